"""POST /alerts under structure-aware fuzzing: Alertmanager payloads mutated field by field, wrong types,
huge and deep structures, odd encodings, many alerts. Whatever arrives, the answer is 2xx or 4xx (never a
5xx Alertmanager would retry forever), and nothing is scheduled without the token or for an unknown bot."""

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.remediator.conftest import TOKEN, FakeClock, RecordingRuntime, client_for, make_config, post

pytestmark = pytest.mark.fuzz

BOTS = ["bot-0", "bot-1", "bot-2"]
ALERTNAMES = ["TradingBotDown", "TradingBotDataCorrupted", "TradingBotApiKeyErrors", "TradingBotStuck",
              "ExchangeRateLimited", "TradingBotDownCritical", "Watchdog"]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    from botwatch.remediator.engine import Remediator
    from botwatch.remediator.tell.notifier import Notifier
    tmp = tmp_path_factory.mktemp("fuzz-webhook")
    bots = [{"name": name, "pidfile": f"{name}.pid", "data_file": f"{name}.csv", "start_command": ["true"],
             "exchange": "binance"} for name in BOTS]
    config = make_config(tmp, bots)
    clock = FakeClock()
    engine = Remediator(config, tmp / "var", clock=clock, sleep=clock.sleep,
                        notifier=Notifier(config.telegram, outbox=tmp / "outbox.jsonl", sleep=lambda s: None),
                        runtime_factory=lambda bot: RecordingRuntime(bot))
    yield engine, client_for(engine)
    engine.stop(wait=False)
    engine.ledger.close()


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
timestamps = st.sampled_from(["2026-11-25T08:00:00Z", "2026-11-25T08:00:00.123456789Z", "0001-01-01T00:00:00Z",
                              "2026-11-25T08:00:00+02:00"]) | st.text(max_size=40)


@st.composite
def alerts(draw):
    labels = {"alertname": draw(st.sampled_from(ALERTNAMES)),
              "bot": draw(st.sampled_from(BOTS + ["ghost", "", "bot-0\n; rm -rf /", "$(reboot)"])),
              "severity": draw(st.sampled_from(["remediate", "critical", "warning"]))}
    if draw(st.booleans()):
        labels["exchange"] = draw(st.sampled_from(["binance", "kraken", ""]))
    labels.update(draw(st.dictionaries(st.text(max_size=12), st.text(max_size=50), max_size=3)))
    return {"status": draw(st.sampled_from(["firing", "resolved"])), "labels": labels,
            "annotations": {"summary": draw(st.text(max_size=50))}, "startsAt": draw(timestamps),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
            "fingerprint": draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16))}


@st.composite
def payloads(draw):
    body = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "remediator",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager",
            "alerts": draw(st.lists(alerts(), max_size=5))}
    for _ in range(draw(st.integers(0, 3))):               # mutate a field somewhere: wrong type, gone, junk
        target = body
        if isinstance(body.get("alerts"), list) and body["alerts"] and draw(st.booleans()):
            target = body["alerts"][draw(st.integers(0, len(body["alerts"]) - 1))]
            if draw(st.booleans()):
                target = target["labels"] if isinstance(target, dict) and isinstance(target.get("labels"), dict) \
                    else target
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            if draw(st.booleans()):
                target[key] = draw(json_values)
            else:
                del target[key]
    return body


def encode(draw_choice: int, body) -> bytes:
    text = json.dumps(body)
    return [text.encode(), text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode(), text.encode("latin-1", "replace"),
            text.encode()[: len(text) // 2]][draw_choice]


def scheduled(engine) -> list:
    return [a for a in engine.ledger.actions()]


@given(body=payloads(), encoding=st.integers(0, 4), authorized=st.booleans())
@example(body={"version": "4", "alerts": [[[[[[]]]]]]}, encoding=0, authorized=True)
def test_any_payload_gets_2xx_or_4xx_and_acts_only_for_known_bots(receiver, body, encoding, authorized):
    engine, client = receiver
    before = {a.id for a in scheduled(engine)}
    response = post(client, encode(encoding, body), token=TOKEN if authorized else "wrong")
    assert response.status_code in (200, 400, 401, 413), response.get_data()[:300]
    new = [a for a in scheduled(engine) if a.id not in before]
    if not authorized or response.status_code != 200:
        assert not new
    for action in new:
        assert action.bot in BOTS, action


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                                  # deeper than json goes: RecursionError
    b'{"version": "4", "alerts": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"version": ' + b"[" * 900 + b"]" * 900 + b', "alerts": []}',   # a version too deep to print
    json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"bot": "bot-0"}}] * 1001}).encode(),
    json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"bot": "x" * 5000},
                                            "startsAt": "2026-11-25T08:00:00Z"}]}).encode(),
    b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": "\\ud800"}, "startsAt": "2026-11-25T08:00:00Z"}]}',
    b"\x00" * 1000,
    b'{"version": "4", "alerts": [], "x": 1e999999}',
    b'{"version": "4", "alerts": [], "x": ' + b"9" * 5000 + b"}",
])
def test_pathological_bodies_are_400_not_500(receiver, body):
    engine, client = receiver
    response = post(client, body)
    assert response.status_code in (200, 400, 413), response.get_data()[:300]

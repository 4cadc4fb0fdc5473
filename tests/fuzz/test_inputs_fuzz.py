"""Fuzzing the other inputs: the config loader, the log tail, Telegram's answers.

- the config loader loads, or raises ConfigError whose every problem names a path (the CLI's exit 2);
- the log tail never raises and counts each complete line once, across arbitrary appends, partial lines,
  binary junk and rotations;
- a Bot API answer of any status and any body is read without raising; only HTTP 200 with `"ok": true`
  is a sent message, and a retry_after is a finite wait of at most a minute.
"""

import copy
import json
import math
import os
import re

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from botwatch.core.config import ERROR_KINDS, ConfigError, config_from_mapping, load_config
from botwatch.core.logtail import LogTail
from botwatch.remediator.tell.notifier import MAX_WAIT, read_answer
from tests.conftest import ROOT

pytestmark = pytest.mark.fuzz

EXAMPLE = yaml.safe_load((ROOT / "config" / "bots.example.yaml").read_text())
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


ALL_PATHS = [p for p in paths(EXAMPLE) if p]


@given(edits=st.lists(st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["set", "delete", "add"]), json_values),
                      max_size=4))
@example(edits=[(("bots",), "set", {"a": 1})])
@example(edits=[(("bots", 0, "check_interval"), "set", float("nan"))])
@example(edits=[(("bots", 0, "data_format"), "set", {"dedup_window": 1e300})])
def test_the_config_loader_loads_or_names_every_problem(tmp_path_factory, edits):
    raw = copy.deepcopy(EXAMPLE)
    for path, how, value in edits:
        parent = raw
        try:
            for key in path[:-1]:
                parent = parent[key]
            if how == "set":
                parent[path[-1]] = value
            elif how == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent["unknown_" + str(path[-1])] = value
        except (KeyError, IndexError, TypeError):
            continue
    folder = tmp_path_factory.mktemp("cfg")
    try:
        config_from_mapping(raw, base=folder)
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
    try:
        text = json.dumps(raw)
    except ValueError:
        return
    (folder / "bots.json").write_text(text)
    try:
        load_config(folder / "bots.json")
    except ConfigError as err:
        assert err.problems


@given(text=st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_any_config_text_loads_or_is_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "bots.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_config(path)
    except ConfigError as err:
        assert err.problems


PATTERNS = {"auth": [re.compile(r"Invalid API-key")], "rate_limit": [re.compile(r"429|rate limit")],
            "other": [re.compile(r"ERROR")]}
LINES = ["all good", "Invalid API-key, IP, or permissions", "HTTP 429 too many", "ERROR something broke",
         "ERROR Invalid API-key", "rate limit hit ERROR", "\x00\xff binary", "é ünïcode 429"]


def kind_of(line: bytes) -> str | None:
    text = line.decode("utf-8", "replace")
    for kind in ERROR_KINDS:
        if any(p.search(text) for p in PATTERNS.get(kind, ())):
            return kind
    return None


@given(steps=st.lists(st.one_of(
    st.tuples(st.just("write"), st.lists(st.sampled_from(LINES) | st.text(max_size=30), max_size=6),
              st.booleans(), st.binary(max_size=20)),
    st.tuples(st.just("collect")), st.tuples(st.just("rotate"))), max_size=25))
def test_the_log_tail_counts_each_line_once_across_appends_and_rotations(tmp_path_factory, steps):
    folder = tmp_path_factory.mktemp("log")
    path = folder / "bot.log"
    path.write_bytes(b"")                 # the bot has started: its log exists, as every later one will
    tail = LogTail(path, PATTERNS)
    generations = [b""]
    rotations = 0
    for step in steps:
        if step[0] == "write":
            _, lines, partial, junk = step
            data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode("utf-8", "surrogatepass")
            data += junk.replace(b"\n", b" ") if partial else b""
            with open(path, "ab") as f:
                f.write(data)
            generations[-1] += data
        elif step[0] == "rotate" and path.exists():
            rotations += 1
            os.rename(path, folder / f"bot.log.{rotations}")
            path.write_bytes(b"")
            generations.append(b"")
        else:
            tail.collect()
    counts = tail.collect()
    expected = dict.fromkeys(ERROR_KINDS, 0)
    for n, content in enumerate(generations):
        *lines, rest = content.split(b"\n")
        if n < len(generations) - 1 and rest:
            lines.append(rest)              # a rotated file's unterminated last line is a line too
        for line in lines:
            kind = kind_of(line)
            if kind:
                expected[kind] += 1
    # a rotation the tail never saw (two renames between collections) loses the middle file's lines only
    if all(step[0] != "rotate" for step in steps) or _each_rotation_seen(steps):
        assert counts == expected
    else:
        assert all(counts[k] <= expected[k] for k in ERROR_KINDS)
    tail.close()


def _each_rotation_seen(steps) -> bool:
    """Whether every file was followed before it was rotated away: a collection ran before the first
    rotation and between every two."""
    since_collect = 1
    for step in steps:
        if step[0] == "rotate":
            since_collect += 1
            if since_collect > 1:
                return False
        elif step[0] == "collect":
            since_collect = 0
    return True


@given(status=st.integers(0, 999), body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({"ok": json_values, "description": json_values,
                                "parameters": json_values | st.fixed_dictionaries({"retry_after": json_values})})
       .map(lambda v: json.dumps(v).encode()))
@example(status=429, body=b'{"ok": false, "parameters": {"retry_after": NaN}}')
@example(status=429, body=b'{"ok": false, "parameters": {"retry_after": -5}}')
@example(status=429, body=b'{"ok": false, "parameters": [1]}')
@example(status=200, body=b'{"ok": "false"}')
@example(status=200, body=b"[" * 5000)
def test_any_telegram_answer_is_read_without_raising(status, body):
    answer = read_answer(status, body)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    assert answer.ok == (status == 200 and isinstance(parsed, dict) and parsed.get("ok") is True)
    if answer.retry_after is not None:
        assert math.isfinite(answer.retry_after) and 0 <= answer.retry_after <= MAX_WAIT
    assert answer.retryable == (not answer.ok and (status == 429 or status >= 500))


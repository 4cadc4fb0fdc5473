"""`botwatch remediator`: load, serve until SIGTERM; `botwatch remediator reset BOT`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from botwatch.core.config import Config

log = logging.getLogger("remediator")

# A webhook delivery waits for the group commit that records it; the threads waiting are the batch, so
# more of them make fewer, larger commits (bench.webhook_storm at 1,000 req/s: with 8, waitress queued
# a third of the deliveries behind busy threads and warned of it each time; a waiting thread costs no CPU)
WEBHOOK_THREADS = 16


def data_dir() -> Path:
    """$BOTWATCH_DATA_DIR (default ./var), created if missing; StartupError when it can't be written."""
    from botwatch.core.serve import writable_dir
    return writable_dir(os.environ.get("BOTWATCH_DATA_DIR", "var"), "BOTWATCH_DATA_DIR")


def read_token(path: str) -> str:
    from botwatch.core.serve import StartupError
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise StartupError(f"--token-file {path}: {getattr(err, 'strerror', None) or err}") from None
    if not token:
        raise StartupError(f"--token-file {path} is empty: it must hold the webhook bearer token")
    return token


# what basic auth (a --web-config's basic_auth_users) guards here: what has no credential of its own. The
# webhook and the operator API take the webhook token, /agent/* an agent's token, the status page its login;
# /runbook is the package's runbook, /-/healthy the health probe's.
GUARDED = ("/metrics", "/sd")


def run(config: Config, host: str, port: int, token: str, ledger: str | None = None, web=None) -> None:
    import gc
    from botwatch.core import webconfig
    from botwatch.core.serve import StartupError, bind, serve
    from botwatch.remediator.web.app import create_app
    from botwatch.remediator.engine import Remediator
    from botwatch.remediator.ledger import LedgerUnavailable
    try:
        remediator = Remediator(config, data_dir(), ledger=ledger, worker=f"{os.uname().nodename}:{port}")
    except LedgerUnavailable as err:
        raise StartupError(str(err)) from None
    try:
        web = web or webconfig.WebConfig()
        app = webconfig.guard(create_app(remediator, token), web, lambda path: path in GUARDED)
        server = bind(app, host, port, "botwatch remediator", threads=WEBHOOK_THREADS, web=web)
        webconfig.say_openness(web, host, "botwatch remediator", list(GUARDED))
    except BaseException:
        remediator.stop(wait=False)
        raise
    if config.remediation.dry_run:
        log.warning("dry run: decisions are recorded, nothing is touched")
    if not remediator.notifier.configured:
        log.warning("telegram not configured: notices go to %s", remediator.notifier.outbox)
    # Under an alert storm many webhook threads each hold the GIL for well under a millisecond: a shorter
    # switch interval than Python's 5 ms keeps one from waiting behind another's slice (bench.webhook_storm).
    # What start-up made lives as long as the process: out of the collector's way (gc.freeze), so a full
    # collection in a storm walks only what the requests made.
    sys.setswitchinterval(0.001)
    gc.collect()
    gc.freeze()
    remediator.start()
    serve(server, "botwatch remediator", on_stop=remediator.stop)


def reset(config: Config, bot: str) -> int:
    from botwatch.remediator.engine import Remediator
    if config.bot(bot) is None:
        print(f"no bot {bot!r} in {config.path}", file=sys.stderr)
        return 2
    remediator = Remediator(config, data_dir())
    remediator.intake.reset(bot)
    remediator.stop(wait=False)
    print(f"{bot}: circuit closed, restart count reset (ledger {remediator.ledger.path})")
    return 0


def _engine(config: Config):
    from botwatch.remediator.engine import Remediator
    return Remediator(config, data_dir())


def backup(config: Config, names: list[str]) -> int:
    unknown = [name for name in names if config.bot(name) is None]
    if unknown:
        print(f"no bot {', '.join(map(repr, unknown))} in {config.path}", file=sys.stderr)
        return 2
    engine = _engine(config)
    try:
        results = engine.periodic.backup(names or None)
    finally:
        engine.stop(wait=False)
    for result in results:
        print(f"{result.bot}: {result.outcome}: {result.detail}")
    return 1 if any(r.outcome == "failed" for r in results) else 0


def restore(config: Config, name: str) -> int:
    if config.bot(name) is None:
        print(f"no bot {name!r} in {config.path}", file=sys.stderr)
        return 2
    engine = _engine(config)
    try:
        action = engine.runner.run_now(name, "restore")
    finally:
        engine.stop(wait=False)
    print(f"{name}: restore {action.outcome}: {action.detail}")
    return 0 if action.outcome in ("success", "dry_run") else 1


def report(config: Config, prometheus: str, since: str, dry_run: bool) -> int:
    from botwatch.core.units import parse_duration
    from botwatch.remediator.tell.notifier import Notifier
    from botwatch.remediator.playbooks import VERBS
    from botwatch.remediator.tell.report import build_report, open_ledger, write_files
    try:
        window = parse_duration(since)
    except ValueError as err:
        print(f"--since: {err}", file=sys.stderr)
        return 2
    ledger = open_ledger(data_dir())
    result = build_report(config, prometheus, ledger, window, verbs=VERBS)
    if dry_run:
        text_path, png_path = write_files(result, data_dir() / "reports")
        print(result.text)
        print(f"\n(written to {text_path}" + (f" and {png_path})" if png_path else "; no chart)"))
        return 0
    notifier = Notifier(config.telegram, outbox=data_dir() / "telegram-outbox.jsonl")
    ok = notifier.send(result.text)
    if result.chart:
        ok &= notifier.send_photo(result.chart, caption=result.title, filename="botwatch-report.png")
    if not notifier.configured:
        print(f"telegram not configured: the report went to {notifier.outbox}", file=sys.stderr)
    return 0 if ok else 1

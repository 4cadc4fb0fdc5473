"""The `botwatch` command: one console script, a subcommand per part (README, "Commands").

The top floor: it parses arguments and dispatches to the services and the ground floor below it;
nothing imports it. A mistake a user can make at start-up is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from botwatch import __version__
from botwatch.core.mixin import CONFIG as MIXIN

EXPORTER_PORT = MIXIN["ports"]["exporter"]
REMEDIATOR_PORT = MIXIN["ports"]["remediator"]
WEB_CONFIG_HELP = ("TLS and basic auth for this listener: a web.yml as Prometheus reads it (tls_server_config, "
                   "basic_auth_users) plus open_paths; see docs/security.md")


def _load(path: str):
    """The config, or exit 2 printing every problem (never a traceback for a mistake in the file)."""
    from botwatch.core.config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None


def check_config(args) -> int:
    from botwatch.core.config import HEALTH_ONLY, warnings
    config = _load(args.file)
    for bot in config.bots:
        extras = [f"every {bot.check_interval:g}s", bot.liveness_source]
        if bot.preset:
            extras.insert(0, f"preset {bot.preset}" + (f" (API {bot.api_url})" if bot.api_url else ""))
        if bot.health_endpoint and bot.runtime != HEALTH_ONLY:
            extras.append(f"health {bot.health_endpoint}")
        extras.append(f"data {bot.data_file}")
        print(f"{bot.name}: {bot.type}, {bot.runtime}, " + ", ".join(extras))
    for warning in warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def exporter(args) -> int:
    import os

    from botwatch.core.serve import setup_logging, writable_dir
    from botwatch.exporter.app import run
    setup_logging(args.log_level)
    config = _load(args.config)
    host, port = _listen(args.listen, EXPORTER_PORT)
    state_dir = None
    if not args.no_checkpoints:
        state_dir = writable_dir(args.state_dir or os.path.join(os.environ.get("BOTWATCH_DATA_DIR", "var"), "exporter"),
                                 "--state-dir")
    client = None
    if args.remediator:
        from botwatch.core.intent_client import IntentClient, IntentError, read_token_file
        if not args.token_file:
            print("botwatch exporter: --remediator goes with --token-file (its bearer token)", file=sys.stderr)
            return 2
        try:
            client = IntentClient(args.remediator, read_token_file(args.token_file))
        except IntentError as err:
            print(f"botwatch exporter: {err}", file=sys.stderr)
            return 2
    run(config, host, port, state_dir, client, web=_web(args))
    return 0


def paperbot(argv: list[str]) -> int:
    from botwatch.up.standins.paperbot.bot import main as paperbot_main
    return paperbot_main(argv)


def remediator(args) -> int:
    from botwatch.core.serve import setup_logging
    from botwatch.remediator import main as remediator_main
    setup_logging(args.log_level)
    config = _load(args.config)
    if args.action == "reset":
        if not args.bot:
            print("botwatch remediator reset BOT --config FILE: name the bot", file=sys.stderr)
            return 2
        return remediator_main.reset(config, args.bot)
    if not args.token_file:
        print("botwatch remediator: --token-file is required (the webhook's bearer token)", file=sys.stderr)
        return 2
    host, port = _listen(args.listen, REMEDIATOR_PORT)
    if args.ledger and not args.ledger.startswith(("postgresql://", "postgres://")):
        print(f"--ledger {args.ledger}: give a postgresql://USER@HOST:PORT/DATABASE URL "
              "(without --ledger, the SQLite file in $BOTWATCH_DATA_DIR)", file=sys.stderr)
        return 2
    remediator_main.run(config, host, port, remediator_main.read_token(args.token_file), args.ledger, web=_web(args))
    return 0


def agent_token(args) -> int:
    """Issue (print once) or revoke the token of one host's agent, in the ledger the remediators share."""
    import time

    from botwatch.remediator import agent_tokens
    from botwatch.remediator.ledger import Ledger, LedgerUnavailable
    from botwatch.remediator.main import data_dir
    config = _load(args.config)
    if args.host not in config.hosts or args.host == "local":
        where = ", ".join(h for h in config.hosts if h != "local") or "none"
        print(f"botwatch agent-token: no host {args.host!r} among the config's bots' hosts ({where})", file=sys.stderr)
        return 2
    if args.ledger and not args.ledger.startswith(("postgresql://", "postgres://")):
        print(f"--ledger {args.ledger}: give a postgresql://USER@HOST:PORT/DATABASE URL "
              "(without --ledger, the SQLite file in $BOTWATCH_DATA_DIR)", file=sys.stderr)
        return 2
    try:
        ledger = Ledger(args.ledger or data_dir() / "ledger.sqlite3")
    except (LedgerUnavailable, OSError) as err:
        print(f"botwatch agent-token: the ledger can't be opened: {err}", file=sys.stderr)
        return 1
    try:
        if args.revoke:
            if not agent_tokens.revoke(ledger, args.host):
                print(f"{args.host} had no token: nothing revoked", file=sys.stderr)
                return 1
            print(f"{args.host}: token revoked; its agent is refused from its next call", file=sys.stderr)
            return 0
        print(agent_tokens.issue(ledger, args.host, time.time()))
        print(f"{args.host}: a new token (shown once; any earlier one stops working); give it to that host's "
              "agent as --token-file", file=sys.stderr)
        return 0
    finally:
        ledger.close()


def agent(args) -> int:
    import os
    from pathlib import Path

    from botwatch.agent.main import run
    from botwatch.core.config_types import SLUG
    from botwatch.core.serve import setup_logging, writable_dir
    from botwatch.remediator.main import read_token
    setup_logging(args.log_level)
    config = _load(args.config)
    if not SLUG.fullmatch(args.host):
        print(f"--host {args.host!r}: a slug (a-z, 0-9, '-'), as the bots' `host:` name it", file=sys.stderr)
        return 2
    urls = [url for value in args.remediator for url in value.split(",") if url]
    bad = [url for url in urls if not url.startswith(("http://", "https://"))]
    if bad or not urls:
        print(f"--remediator {' '.join(bad) or '(none)'}: give each remediator's https:// (or http://) URL",
              file=sys.stderr)
        return 2
    if args.ca_file and not os.path.isfile(args.ca_file):
        print(f"--ca-file {args.ca_file}: no such file (the CA that signed the remediators' certificates)",
              file=sys.stderr)
        return 2
    listen = _listen(args.listen, EXPORTER_PORT)
    state = writable_dir(args.state_dir or os.path.join(os.environ.get("BOTWATCH_DATA_DIR", "var"), "agent"),
                         "--state-dir")
    run(config, args.host, listen, args.advertise, urls, read_token(args.token_file), Path(state), web=_web(args),
        ca_file=args.ca_file)
    return 0


def backup(args) -> int:
    from botwatch.core.serve import setup_logging
    from botwatch.remediator import main as remediator_main
    setup_logging(args.log_level)
    return remediator_main.backup(_load(args.config), args.bots)


def restore(args) -> int:
    from botwatch.core.serve import setup_logging
    from botwatch.remediator import main as remediator_main
    setup_logging(args.log_level)
    return remediator_main.restore(_load(args.config), args.bot)


def report(args) -> int:
    from botwatch.core.serve import setup_logging
    from botwatch.remediator import main as remediator_main
    setup_logging(args.log_level)
    return remediator_main.report(_load(args.config), args.prometheus, args.since, args.dry_run)


def healthcheck(args) -> int:
    """The image's HEALTHCHECK: the service this container runs (its PID 1's `--listen HOST:PORT`) answers
    `/-/healthy`; a one-shot command (no --listen) is healthy while it runs."""
    import os
    import urllib.request
    try:
        argv = open(f"/proc/{args.pid}/cmdline", "rb").read().split(b"\0")
    except OSError as err:
        print(f"botwatch healthcheck: pid {args.pid}: {err.strerror}", file=sys.stderr)
        return 1
    words = [word.decode(errors="replace") for word in argv]
    if "--listen" not in words[:-1]:
        return 0
    host, _, port = words[words.index("--listen") + 1].rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    scheme, context = "http", None
    if "--web-config" in words[:-1]:       # TLS when the service's web config says so; its own loopback address
        import ssl                         # is asked, so the certificate's names are not checked here

        from botwatch.core import webconfig
        from botwatch.core.serve import StartupError
        try:
            given = words[words.index("--web-config") + 1]
            tls = webconfig.load(os.path.join(f"/proc/{args.pid}/cwd", given)).tls   # relative to its folder
        except StartupError as err:
            print(f"botwatch healthcheck: {err}", file=sys.stderr)
            return 1
        if tls:
            scheme, context = "https", ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/-/healthy"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as err:
        print(f"botwatch healthcheck: {url}: {err}", file=sys.stderr)
        return 1


def hash_password(args) -> int:
    """A bcrypt hash for `status_page.users[].password_hash`: the password from a prompt (asked twice) or
    one line of stdin; the hash alone on stdout."""
    import getpass

    from botwatch.remediator.web.login import hash_password as make_hash
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("botwatch hash-password: the two passwords differ; nothing made", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(make_hash(password, args.rounds))
    except ValueError as err:
        print(f"botwatch hash-password: {err}", file=sys.stderr)
        return 2
    return 0


def render_alertmanager(args) -> int:
    from pathlib import Path

    from botwatch.up.alertmanager import RenderError, render, write
    config = _load(args.config)
    try:
        text = render(config, args.remediator_url, args.webhook_token_file, template=args.template,
                      ca_file=args.ca_file)
    except RenderError as err:
        print(err, file=sys.stderr)
        return 2
    if not (config.telegram.bot_token_file and config.telegram.chat_ids):
        print("warning: telegram.bot_token_file or chat_id not set: Telegram receivers left empty", file=sys.stderr)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        write(Path(args.out), text)
    return 0


def up(args) -> int:
    if args.fleet is not None:
        if args.config or args.with_freqtrade or args.ha:
            print("botwatch up --fleet: runs its own demo hosts; --config, --with-freqtrade and --ha go without it",
                  file=sys.stderr)
            return 2
        from botwatch.up.fleet import up_fleet
        return up_fleet(args.fleet, args.timings, args.state_dir)
    from botwatch.up.stack import up as stack_up
    return stack_up(args.config, args.timings, args.state_dir, args.with_freqtrade, args.ha)


def decide(args) -> int:
    """`botwatch pause|resume|pauses|stop`: the remediator's operator API; exit 2 for a mistake in what was
    asked (an unknown bot, a bad duration), 1 when the remediator can't be reached."""
    import getpass
    import socket

    from botwatch.core.intent_client import IntentClient, IntentError, read_token_file
    from botwatch.core.units import format_duration
    names = getattr(args, "bots", []) or []
    if args.config:
        config = _load(args.config)
        unknown = [name for name in names if config.bot(name) is None]
        if unknown:
            print(f"botwatch {args.command}: no bot {', '.join(map(repr, unknown))} in {config.path}", file=sys.stderr)
            return 2
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        client = IntentClient(args.remediator, read_token_file(args.token_file))
        if args.command == "pause":
            for pause in client.pause(names, args.host, args.all, args.duration, args.until, args.reason, who):
                print(f"{', '.join(pause['bots']) or pause['target']}: {pause['says']}")
        elif args.command == "resume":
            ended = client.resume(names, args.host, args.all, who)
            for pause in ended:
                print(f"{', '.join(pause['bots']) or pause['target']}: resumed ({pause['says']})")
            if not ended:
                print("nothing to resume: no pause holds " + (", ".join(names) or args.host or "any bot"))
        elif args.command == "stop":
            for name in client.stop(names, who):
                print(f"{name}: stopped; botwatch will not start it until `botwatch resume {name}`")
        else:
            import time
            for pause in client.pauses():
                left = "until resumed" if pause["until"] is None else \
                    f"until {_utc(pause['until'])} ({format_duration(max(0, pause['until'] - time.time()))} left)"
                print(f"{', '.join(pause['bots']) or pause['target']}\t{pause['reason']}: {pause['comment']}\t"
                      f"by {pause['who']}\t{left}")
    except IntentError as err:
        print(f"botwatch {args.command}: {err}", file=sys.stderr)
        return 2 if err.usage else 1
    return 0


def _utc(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _web(args):
    """The listener's --web-config (TLS, basic auth), loaded now: a mistake in it stops the start, named."""
    from botwatch.core import webconfig
    return webconfig.load(args.web_config)


def _listen(value: str, default_port: int) -> tuple[str, int]:
    from botwatch.core.serve import parse_listen
    try:
        return parse_listen(value, default_port)
    except ValueError as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="botwatch", description="Monitoring and automatic recovery for trading bots.")
    p.add_argument("--version", action="version", version=f"botwatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("check-config", help="validate a config file; exit 2 listing every problem")
    c.add_argument("file")
    c.set_defaults(func=check_config)
    _services(sub)
    _tools(sub)
    _decisions(sub)
    # the demo bot has its own parser (it stands alone); listed here for --help
    sub.add_parser("paperbot", help="run the demo paper-trading bot (botwatch paperbot --help)", add_help=False)
    return p


def _command(sub, name: str, func, help: str, log_level: str = "INFO") -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=help)
    command.add_argument("--log-level", default=log_level)
    command.set_defaults(func=func)
    return command


def _services(sub) -> None:
    """The long-running commands."""
    e = _command(sub, "exporter", exporter, "serve the bots' metrics for Prometheus")
    e.add_argument("--config", required=True)
    e.add_argument("--listen", default=f"127.0.0.1:{EXPORTER_PORT}", help="HOST:PORT (default %(default)s)")
    e.add_argument("--state-dir", help="where the trade-file checkpoints go (default $BOTWATCH_DATA_DIR/exporter, "
                                       "BOTWATCH_DATA_DIR defaulting to ./var)")
    e.add_argument("--no-checkpoints", action="store_true", help="read every trade file from its first byte at start")
    e.add_argument("--remediator", help="the remediator's URL: publish tradingbot_paused from its pauses")
    e.add_argument("--token-file", help="with --remediator: file holding its bearer token")
    e.add_argument("--web-config", help=WEB_CONFIG_HELP)

    m = _command(sub, "remediator", remediator, "the Alertmanager webhook receiver that runs playbooks; `reset BOT`")
    m.add_argument("action", nargs="?", choices=("serve", "reset"), default="serve")
    m.add_argument("bot", nargs="?", help="with reset: the bot whose circuit to close")
    m.add_argument("--config", required=True)
    m.add_argument("--listen", default=f"127.0.0.1:{REMEDIATOR_PORT}", help="HOST:PORT (default %(default)s)")
    m.add_argument("--token-file", help="file holding the webhook's bearer token (Alertmanager's, the operator API's)")
    m.add_argument("--web-config", help=WEB_CONFIG_HELP)
    m.add_argument("--ledger", help="postgresql://USER@HOST:PORT/DB: a ledger replicas share (default: the "
                                    "SQLite file in $BOTWATCH_DATA_DIR)")

    a = _command(sub, "agent", agent, "on each host: its bots' exporter, and the executor of their jobs")
    a.add_argument("--config", required=True)
    a.add_argument("--host", required=True, help="this host's name, as its bots' `host:` give it")
    a.add_argument("--remediator", required=True, action="append",
                   help="the central remediator's URL (repeat, or comma-separate, for each replica)")
    a.add_argument("--token-file", required=True, help="file holding this host's agent token (`botwatch agent-token HOST`)")
    a.add_argument("--listen", default=f"127.0.0.1:{EXPORTER_PORT}", help="HOST:PORT for /metrics (default %(default)s)")
    a.add_argument("--advertise", help="HOST:PORT Prometheus scrapes this agent at (default: --listen)")
    a.add_argument("--web-config", help=WEB_CONFIG_HELP)
    a.add_argument("--ca-file", help="the CA that signed the remediators' certificates (default: the system's)")
    a.add_argument("--state-dir", help="checkpoints, mirrors, the agent's own ledger (default $BOTWATCH_DATA_DIR/agent)")

    u = sub.add_parser("up", help="start the local stack: demo bots (or --config's), exporter, remediator, "
                                  "Prometheus, Alertmanager")
    u.add_argument("--config", help="your bots instead of the four demo paperbots")
    u.add_argument("--timings", choices=("fast", "default"), default="default")
    u.add_argument("--state-dir", default="var/stack")
    u.add_argument("--with-freqtrade", nargs="?", const="auto", metavar="FREQTRADE",
                   help="add a real Freqtrade in dry-run on a local exchange (its executable; default: "
                        "freqtrade on PATH or in .venv-freqtrade)")
    u.add_argument("--ha", action="store_true", help="two Alertmanager peers in a cluster and two Prometheus "
                                                     "servers, as production runs them")
    u.add_argument("--fleet", type=int, metavar="N", help="N hosts as network namespaces (root), each with its agent "
                                                          "and two demo bots; two remediators on PostgreSQL")
    u.set_defaults(func=up)


def _tools(sub) -> None:
    """The commands that do one thing and exit."""
    k = _command(sub, "backup", backup, "back up the bots' valid trade files (all, or those named)", "WARNING")
    k.add_argument("--config", required=True)
    k.add_argument("bots", nargs="*", metavar="BOT")

    s = _command(sub, "restore", restore, "the restore playbook, by hand: stop, quarantine, restore, replay, start")
    s.add_argument("--config", required=True)
    s.add_argument("bot", metavar="BOT")

    t = _command(sub, "report", report, "the morning report: uptime, P&L, actions, positions, to Telegram", "WARNING")
    t.add_argument("--config", required=True)
    t.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    t.add_argument("--since", default="24h", help="the window (default %(default)s)")
    t.add_argument("--dry-run", action="store_true", help="print the text and write the chart instead of sending")

    a = _command(sub, "agent-token", agent_token, "issue (or --revoke) the token of one host's agent: printed "
                 "once, only its hash kept in the ledger", "WARNING")
    a.add_argument("host", metavar="HOST")
    a.add_argument("--revoke", action="store_true", help="shut the host's agent out at once")
    a.add_argument("--config", required=True)
    a.add_argument("--ledger", help="postgresql://USER@HOST:PORT/DB: the remediators' shared ledger (default: the "
                   "SQLite file in $BOTWATCH_DATA_DIR)")

    c = sub.add_parser("healthcheck", help="exit 0 when this container's service answers /-/healthy (the image's "
                                           "HEALTHCHECK)")
    c.add_argument("--pid", type=int, default=1, help="the service's process (default %(default)s: the container's)")
    c.add_argument("--timeout", type=float, default=4.0)
    c.set_defaults(func=healthcheck)

    h = sub.add_parser("hash-password", help="print a bcrypt hash for status_page.users (password from a "
                                             "prompt or one line of stdin)")
    h.add_argument("--rounds", type=int, default=12, choices=range(10, 16), metavar="10-15",
                   help="bcrypt's cost (default %(default)s: about a quarter second a login)")
    h.set_defaults(func=hash_password)

    r = sub.add_parser("render-alertmanager", help="write alertmanager.yml with the Telegram token and chats in")
    r.add_argument("--config", required=True)
    r.add_argument("--remediator-url", default=f"http://127.0.0.1:{REMEDIATOR_PORT}")
    r.add_argument("--webhook-token-file", required=True, help="the remediator's bearer token file")
    r.add_argument("--out", required=True, help="where Alertmanager reads it (mode 0600), or - for stdout")
    r.add_argument("--template", help="your alertmanager.yml, its templates/ beside it (default: the one botwatch ships)")
    r.add_argument("--ca-file", help="with an https --remediator-url: the CA that signed its certificate (as "
                                      "Alertmanager sees the file; default: the system's)")
    r.set_defaults(func=render_alertmanager)


def _decisions(sub) -> None:
    """The operator's decisions, sent to the remediator (its operator API)."""
    def client_flags(command):
        command.add_argument("--config", help="check the bot names against this config first")
        command.add_argument("--remediator", default=f"http://127.0.0.1:{REMEDIATOR_PORT}",
                             help="the remediator's URL (default %(default)s)")
        command.add_argument("--token-file", required=True, help="file holding the remediator's bearer token")
        command.set_defaults(func=decide)

    def scope_flags(command):
        command.add_argument("bots", nargs="*", metavar="BOT")
        command.add_argument("--host", help="every bot on this host")
        command.add_argument("--all", action="store_true", help="every bot")

    p = sub.add_parser("pause", help="pause bots: an Alertmanager silence and a hold no playbook passes")
    scope_flags(p)
    p.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 2h (default: until resumed)")
    p.add_argument("--until", help="an ISO time, e.g. 2026-12-02T18:00 (UTC without an offset)")
    p.add_argument("--reason", required=True, help="why: the silence's comment, the status page's words")
    client_flags(p)
    r = sub.add_parser("resume", help="end the pauses (and deliberate stops) of bots; they are watched again")
    scope_flags(r)
    client_flags(r)
    s = sub.add_parser("stop", help="stop bots on purpose: held first, then stopped; botwatch won't start them")
    s.add_argument("bots", nargs="+", metavar="BOT")
    client_flags(s)
    client_flags(sub.add_parser("pauses", help="list the active pauses: bot, reason, who, until"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["paperbot"]:
        return paperbot(argv[1:])
    args = parser().parse_args(argv)
    from botwatch.core.serve import StartupError
    try:
        return args.func(args) or 0
    except StartupError as err:
        print(f"botwatch {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

"""The ledger's job queue and its decisions, each on SQLite and on PostgreSQL: two ledgers on one
database stand for two remediator replicas."""

from __future__ import annotations

import threading

import pytest

from botwatch.remediator.ledger import Ledger

STARTS = "2026-11-25T08:00:00Z"


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request, tmp_path):
    """Two ledgers on one database, as two replicas open it."""
    target = request.getfixturevalue("postgres_url") if request.param == "postgresql" else tmp_path / "ledger.sqlite3"
    ledgers = [Ledger(target), Ledger(target)]
    yield ledgers
    for ledger in ledgers:
        ledger.close()


def test_two_replicas_racing_on_every_copy_open_one_incident(pair):
    """50 alerts, each delivered to both replicas at once (two HA peers): 50 incidents open, not 100."""
    opened, answered = [], []
    barrier = threading.Barrier(2)

    def deliver(ledger):
        barrier.wait()
        for i in range(50):
            for copy in (STARTS, "2026-11-25T08:00:01Z"):     # and the second Prometheus' startsAt
                if ledger.open_incident(f"fp{i}", copy, "TradingBotDown", f"bot-{i}", 1.0):
                    opened.append(i)
                answered.append(i)

    threads = [threading.Thread(target=deliver, args=(ledger,)) for ledger in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(opened) == list(range(50)) and len(answered) == 200


def test_a_job_goes_to_one_worker_of_its_host_only(pair):
    a, b = pair
    job = a.schedule("bot-1", "restart", 10.0, host="vps-b", deadline=200.0)
    assert a.claim("vps-a", "agent-a", 11.0, 30.0) == []                 # another host's agent
    [claimed] = a.claim("vps-b", "agent-b", 11.0, 30.0)
    assert (claimed.id, claimed.attempt, claimed.worker, claimed.lease_until) == (job, 1, "agent-b", 41.0)
    assert b.claim("vps-b", "agent-b2", 12.0, 30.0) == []                # held: its lease runs
    assert b.finish(job, 20.0, "success", "restarted", attempt=1)
    assert b.claim("vps-b", "agent-b", 50.0, 30.0) == []


def test_a_lapsed_lease_is_claimed_again_and_the_stale_end_is_refused(pair):
    a, b = pair
    job = a.schedule("bot-1", "restart", 10.0, host="vps-b", deadline=500.0)
    [first] = a.claim("vps-b", "agent-b", 10.0, 30.0)
    assert a.renew(job, first.attempt, 70.0)                             # renewed while it runs
    assert b.claim("vps-b", "agent-b", 50.0, 30.0) == []
    [second] = b.claim("vps-b", "agent-b", 71.0, 30.0)                    # the worker died: the lease lapsed
    assert second.attempt == 2
    assert not a.finish(job, 80.0, "success", "late", attempt=first.attempt)        # fenced off
    assert not a.renew(job, first.attempt, 200.0)
    assert not a.holds(job, first.attempt) and b.holds(job, second.attempt)
    assert b.finish(job, 81.0, "failed", "still down", attempt=second.attempt)
    assert b.action(job).detail == "still down"


def test_one_job_at_a_time_per_bot(pair):
    a, _ = pair
    first = a.schedule("bot-1", "restart", 10.0, host="h")
    a.schedule("bot-1", "restore", 10.0, host="h")
    other = a.schedule("bot-2", "restart", 10.0, host="h")
    assert [job.id for job in a.claim("h", "w", 11.0, 30.0)] == [first, other]
    assert a.claim("h", "w", 12.0, 30.0) == []
    a.finish(first, 13.0, "success", "ok", attempt=1)
    assert [job.playbook for job in a.claim("h", "w", 14.0, 30.0)] == ["restore"]


def test_a_job_not_started_by_its_deadline_expires(pair):
    a, b = pair
    done = a.schedule("bot-1", "restart", 10.0, host="cut-off", deadline=130.0)
    held = a.schedule("bot-2", "restart", 10.0, host="cut-off", deadline=130.0)
    a.claim("cut-off", "agent", 10.0, 30.0)                  # both claimed; then the host is cut off
    a.finish(done, 11.0, "failed", "still down", attempt=1)
    queued = a.schedule("bot-1", "restart", 20.0, host="cut-off", deadline=140.0)     # its retry
    assert b.claim("cut-off", "agent", 150.0, 30.0) == []     # the agent back: nothing past its deadline
    assert b.expire(150.0) == 2                              # the queued one, and the held one whose lease lapsed
    assert {b.action(i).outcome for i in (queued, held)} == {"expired"} and b.action(done).outcome == "failed"
    assert b.job_counts() == {"queued": 0, "running": 0, "expired": 2}


def test_a_bot_its_worker_still_runs_is_not_handed_out_again(pair):
    a, _ = pair
    a.schedule("bot-1", "restart", 10.0, host="h")
    a.schedule("bot-2", "restart", 10.0, host="h")
    assert [job.bot for job in a.claim("h", "agent", 11.0, 30.0, busy={"bot-1"})] == ["bot-2"]


def test_defer_moves_the_deadline_with_the_run(pair):
    a, _ = pair
    job = a.schedule("bot-1", "restart", 10.0, host="h", deadline=130.0)
    [claimed] = a.claim("h", "w", 10.0, 30.0)
    assert a.defer(job, 400.0, "backoff", attempt=claimed.attempt, ttl=120.0)
    assert a.action(job).deadline == 520.0 and a.expire(450.0) == 0
    [again] = a.claim("h", "w", 400.0, 30.0)
    assert again.attempt == 2


def test_agents_heartbeat_once_each(pair):
    a, b = pair
    a.heartbeat("vps-a", "10.0.0.2:9817", 1.0, "0.1.0")
    b.heartbeat("vps-a", "10.0.0.2:9817", 2.0, "0.1.0")
    b.heartbeat("vps-b", "10.0.0.3:9817", 2.0, "0.1.0")
    assert [(agent.host, agent.last_seen) for agent in a.agents()] == [("vps-a", 2.0), ("vps-b", 2.0)]


def test_an_old_ledger_file_gets_the_job_columns(tmp_path):
    import sqlite3
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:            # the schema of the first release
        db.execute("CREATE TABLE actions (id INTEGER PRIMARY KEY, bot TEXT NOT NULL, playbook TEXT NOT NULL, "
                   "alertname TEXT, fingerprint TEXT, starts_at TEXT, state TEXT NOT NULL, outcome TEXT, "
                   "run_at REAL NOT NULL, started_at REAL, finished_at REAL, detail TEXT, log_excerpt TEXT)")
        db.execute("INSERT INTO actions (bot, playbook, state, run_at) VALUES ('b', 'restart', 'scheduled', 1.0)")
    ledger = Ledger(path)
    [job] = ledger.claim("local", "w", 2.0, 30.0)
    assert (job.bot, job.host, job.attempt) == ("b", "local", 1)


def _finish(ledger, bot, starts_at, outcome, now, alertname="TradingBotDown"):
    job = ledger.schedule(bot, "restart", now, alertname, "fp", starts_at)
    ledger.start(job, now)
    ledger.finish(job, now + 1, outcome, outcome)
    return job


def test_a_late_resolve_of_the_previous_episode_leaves_the_new_incident_open(pair):
    """Killed again 20 s after its last TradingBotDown resolved: the peer's late `resolved` copy of the old
    episode (its own startsAt, an endsAt before the new episode began) must not close the new incident."""
    a, b = pair
    assert a.open_incident("fp", "2026-11-25T08:00:00Z", "TradingBotDown", "bot-1", 100.0)
    _finish(a, "bot-1", "2026-11-25T08:00:00Z", "success", 101.0)
    assert a.resolve_incident("fp", "2026-11-25T08:00:00Z", "TradingBotDown", "bot-1", 160.0,
                              ends_at="2026-11-25T08:01:00Z")
    assert b.open_incident("fp", "2026-11-25T08:01:20Z", "TradingBotDown", "bot-1", 180.0)     # killed again
    assert not b.resolve_incident("fp", "2026-11-25T08:00:01Z", "TradingBotDown", "bot-1", 185.0,
                                  ends_at="2026-11-25T08:01:01Z")      # the other Prometheus' old episode, late
    assert not a.resolve_incident("fp", "2026-11-25T08:00:00Z", "TradingBotDown", "bot-1", 186.0,
                                  ends_at="2026-11-25T08:01:00Z")      # the same old copy again
    assert a.incident_open("fp", "2026-11-25T08:01:20Z")
    assert not b.open_incident("fp", "2026-11-25T08:01:20Z", "TradingBotDown", "bot-1", 187.0)   # still one
    assert a.resolve_incident("fp", "2026-11-25T08:01:19Z", "TradingBotDown", "bot-1", 300.0,
                              ends_at="2026-11-25T08:03:00Z")          # its own end, from either peer
    assert not a.incident_open("fp", "2026-11-25T08:01:20Z")


def test_an_incident_whose_playbook_found_nothing_to_do_acts_on_a_later_copy(pair):
    """'Already up, skipped' is not 'acted on': the same episode delivered again (a frozen bot whose Stuck
    alert never resolved) acts again; once something was done, it is a duplicate."""
    a, b = pair
    starts = "2026-11-25T08:00:00Z"
    assert a.open_incident("fp", starts, "TradingBotStuck", "bot-1", 100.0)
    job = a.schedule("bot-1", "restart", 100.0, "TradingBotStuck", "fp", starts)
    assert not b.open_incident("fp", starts, "TradingBotStuck", "bot-1", 101.0)     # pending: a duplicate
    a.start(job, 102.0)
    a.finish(job, 103.0, "skipped", "already up, not restarted")
    assert b.open_incident("fp", starts, "TradingBotStuck", "bot-1", 130.0)         # nothing was done: act
    assert b.incident_open("fp", starts)
    _finish(b, "bot-1", starts, "success", 131.0, "TradingBotStuck")
    assert not a.open_incident("fp", starts, "TradingBotStuck", "bot-1", 160.0)     # done: a duplicate


def test_the_other_prometheus_copy_of_an_episode_that_already_resolved_is_that_episode(pair):
    """Two Prometheus servers: A's copy fires (08:00:42), is acted on and resolves (ended 08:00:46); B's copy
    of the same episode (startsAt 08:00:43) reaches the remediator only after that resolve. It started before
    the episode ended, so it is that episode: no second restore of a file already restored (seen in the
    chaos soak: a spurious start). A later episode still acts."""
    a, b = pair
    assert a.open_incident("fp", "2026-11-25T08:00:42Z", "TradingBotDataCorrupted", "bot-5", 100.0)
    _finish(a, "bot-5", "2026-11-25T08:00:42Z", "success", 101.0, "TradingBotDataCorrupted")
    assert a.resolve_incident("fp", "2026-11-25T08:00:42Z", "TradingBotDataCorrupted", "bot-5", 105.0,
                              ends_at="2026-11-25T08:00:46Z")
    assert not b.open_incident("fp", "2026-11-25T08:00:43Z", "TradingBotDataCorrupted", "bot-5", 107.0)
    assert not b.incident_open("fp", "2026-11-25T08:00:43Z")
    assert b.open_incident("fp", "2026-11-25T08:05:00Z", "TradingBotDataCorrupted", "bot-5", 400.0)


def test_concurrent_deliveries_share_commits_and_each_returns_once_its_work_is_committed(pair):
    """Group commit: 40 threads at once → fewer commits than deliveries; every one recorded when its call
    returns (read back through the other replica's connection: committed, not just written)."""
    ledger, other = pair
    barrier = threading.Barrier(40)
    seen_after_return = []

    def deliver(i):
        barrier.wait()
        ledger.grouped(lambda: ledger.record_delivery(1.0, "TradingBotDown", f"bot-{i}", "firing", "fp", STARTS, "x"))
        seen_after_return.append(bool(other._read("SELECT 1 AS ok FROM deliveries WHERE bot = ?", (f"bot-{i}",))))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen_after_return == [True] * 40
    assert ledger._group.pieces == 40 and ledger._group.batches < 40


def test_deliveries_recorded_in_a_transaction_are_written_at_its_commit_however_many(pair):
    """Deliveries wait for their transaction's commit and go in together, in inserts of a bounded size: 1,201 of
    them (three inserts) are all there once it commits, none before; a transaction that fails writes none."""
    ledger, other = pair
    with ledger.transaction():
        for i in range(1201):
            ledger.record_delivery(1.0, "TradingBotDown", f"bot-{i}", "firing", "fp", STARTS, "x")
        assert other._one("SELECT COUNT(*) AS n FROM deliveries")["n"] == 0
    assert other._one("SELECT COUNT(*) AS n FROM deliveries")["n"] == 1201
    with pytest.raises(RuntimeError):
        with ledger.transaction():
            ledger.record_delivery(1.0, "TradingBotDown", "lost", "firing", "fp", STARTS, "x")
            raise RuntimeError("the transaction fails")
    ledger.record_delivery(1.0, "TradingBotDown", "alone", "firing", "fp", STARTS, "x")   # outside: written at once
    assert sorted(row["bot"] for row in other._read("SELECT bot FROM deliveries WHERE bot IN ('lost', 'alone')")) \
        == ["alone"]


def test_a_delivery_that_fails_is_rolled_back_alone(pair):
    ledger, _ = pair
    ready, release = threading.Event(), threading.Event()
    errors = []

    def slow_good():                          # leads a batch, so the others queue behind it
        ready.set()
        release.wait(10)
        ledger.record_delivery(1.0, "A", "good-1", "firing", "fp", STARTS, "x")

    def bad():
        ledger.record_delivery(1.0, "A", "bad", "firing", "fp", STARTS, "x")
        raise ValueError("a bug in one delivery")

    def run(fn):
        try:
            ledger.grouped(fn)
        except ValueError as err:
            errors.append(str(err))

    first = threading.Thread(target=run, args=(slow_good,))
    first.start()
    ready.wait(10)
    rest = [threading.Thread(target=run, args=(fn,)) for fn in (
        bad, lambda: ledger.record_delivery(1.0, "A", "good-2", "firing", "fp", STARTS, "x"))]
    for thread in rest:
        thread.start()
    release.set()
    for thread in [first, *rest]:
        thread.join()
    assert errors == ["a bug in one delivery"]
    bots = sorted(row["bot"] for row in ledger._read("SELECT bot FROM deliveries"))
    assert bots == ["good-1", "good-2"]


def test_a_batch_whose_commit_is_interrupted_fails_every_caller_none_returns_as_recorded(pair):
    """A BaseException (SystemExit, KeyboardInterrupt) is not caught by the batch's own error handling: the
    other callers of that batch must get an error, not a result as if their work were committed."""
    import time
    ledger, other = pair
    ready, release, outcomes = threading.Event(), threading.Event(), {}

    def slow_first():                  # leads the first batch, so the next two queue together behind it
        ready.set()
        release.wait(10)

    def interrupted():
        raise KeyboardInterrupt

    def deliver(name, fn):
        try:
            ledger.grouped(fn)
            outcomes[name] = "returned"
        except BaseException as err:  # noqa: B036 - what each caller saw is the point
            outcomes[name] = type(err).__name__

    threads = [threading.Thread(target=deliver, args=("first", slow_first))]
    threads[0].start()
    ready.wait(10)
    for name, fn in (("interrupted", interrupted),
                     ("good", lambda: ledger.record_delivery(1.0, "A", "good", "firing", "fp", STARTS, "x"))):
        threads.append(threading.Thread(target=deliver, args=(name, fn)))
        threads[-1].start()
        deadline = time.monotonic() + 10
        while len(ledger._group._queue) < len(threads) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(ledger._group._queue) == 2
    release.set()
    for thread in threads:
        thread.join(10)
    assert outcomes["first"] == "returned" and outcomes["interrupted"] == "KeyboardInterrupt"
    recorded = bool(other._read("SELECT bot FROM deliveries WHERE bot = 'good'"))
    assert not recorded and outcomes["good"] == "RuntimeError"

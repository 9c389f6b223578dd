"""The turn budget in Redis (mirror/visitors/redis_budget.py), for replicas on several hosts: a visitor gets the host's
turns whichever replica of whichever host answers.

Every test talks to a real ``redis-server`` (tests/redis_server.py: a free loopback port, a password). First two
budgets on one server, as two replicas on two hosts would hold them, and four processes racing on it; then what an
operator sees when Redis is not there; then the real thing: ``python -m mirror.cluster`` behind nginx, whose
``/v1`` goes round robin, with the replicas' SQLite budget file switched off so that only Redis can share the count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import PASSWORD, RedisServer, redis_server
from test_cluster import RunningCluster
from test_shared_budget import KEY, ask

from mirror.visitors.budget import Ok, OverBudget, Rule
from mirror.visitors.redis_budget import PREFIX, RedisBudget, StoreDown, StoreUnreachable, redact
from mirror.visitors.redis_usage import KEY as USAGE_KEY
from mirror.visitors.redis_usage import RedisUsage
from phi4_standin.launcher import start_standin
from phi4_standin.process import free_port

ROOT = Path(__file__).resolve().parents[1]
RULE = Rule(2, 3600.0, "hour")


def test_two_replicas_on_one_redis_give_a_visitor_the_host_s_turns(fresh: RedisServer) -> None:
    clock = [1000.0]
    one, two = (RedisBudget(RULE, fresh.url, admins=["host"], clock=lambda: clock[0]) for _ in range(2))
    assert one.spend("addr:1.2.3.4") == Ok(1)
    assert two.check("addr:1.2.3.4") == Ok(1)  # a check counts nothing
    assert two.spend("addr:1.2.3.4") == Ok(0)
    over = one.spend("addr:1.2.3.4")
    assert type(over) is OverBudget and over.retry_at == 1000.0 + 3600.0 and over.now == 1000.0, over
    assert two.left("addr:1.2.3.4") == 0 and two.left("addr:5.6.7.8") == 2  # another visitor is untouched
    two.refund("addr:1.2.3.4")  # refused before the Space saw it: given back, seen by the other replica too
    assert one.left("addr:1.2.3.4") == 1
    assert one.spend("user:host") == Ok(None)  # the host has no limit, and nothing of it is stored
    assert fresh.client().exists(PREFIX + "user:host") == 0
    clock[0] += 3600.0  # the window slides: both turns age out
    assert two.left("addr:1.2.3.4") == 2


def test_without_an_injected_clock_the_window_runs_on_redis_s_clock(fresh: RedisServer) -> None:
    """One clock for every host (Redis's TIME): the sentence's times and the key's expiry follow it."""
    budget = RedisBudget(RULE, fresh.url)
    before = time.time()
    assert budget.spend("user:ann") == Ok(1)
    assert budget.spend("user:ann") == Ok(0)
    over = budget.spend("user:ann")
    after = time.time()
    assert type(over) is OverBudget, over
    assert before - 1 <= over.now <= after + 1, (before, over.now, after)  # the same machine: the same clock
    assert before + 3600 - 1 <= over.retry_at <= after + 3600 + 1, over
    assert "2 turns per hour" in over.sentence() and "in 60 minutes" in over.sentence(), over.sentence()
    ttl = fresh.client().pttl(PREFIX + "user:ann")
    assert 3_590_000 < ttl <= 3_600_000, ttl  # a visitor who stops chatting is forgotten an hour later


RACER = """
import json, sys, threading, time
from mirror.visitors.budget import Ok, Rule
from mirror.visitors.redis_budget import RedisBudget
budget = RedisBudget(Rule(1, 3600.0, "hour"), sys.argv[1])
print("ready", flush=True)
start = float(sys.stdin.readline())  # when every racer is ready
got = {}

def race():
    while time.time() < start:
        time.sleep(0.001)
    while (now := time.time()) < start + 3.0:
        slot = str(int(now * 20))  # every 50 ms a new visitor, the same in every racer: its one turn is raced for
        if isinstance(budget.spend(f"user:slot{slot}"), Ok):
            got[slot] = got.get(slot, 0) + 1  # (a dict's get and set under the GIL: fine for these counts)

threads = [threading.Thread(target=race) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(got))
"""


def test_racing_replica_processes_let_exactly_the_budget_through(fresh: RedisServer) -> None:
    """Four processes (as four replicas on four hosts), four threads each (as a replica's concurrent turns), spend
    turns as fast as they can for a new visitor every 50 ms by the clock they share: each visitor's one turn gets
    through exactly once. (Many visitors of one turn each: a race can only show where a visitor's last turn is
    decided, so 60 chances, not one.)"""
    procs = [subprocess.Popen([sys.executable, "-c", RACER, fresh.url], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:  # each has imported and connected: the race starts on the same clock for all
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate(timeout=30)
    at = time.time() + 0.5
    outs = [p.communicate(f"{at}\n", timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    allowed: dict[str, int] = {}
    for out, _ in outs:
        for slot, n in json.loads(out).items():
            allowed[slot] = allowed.get(slot, 0) + n
    assert len(allowed) >= 20, allowed  # the processes did race (even on two busy cores)
    assert {slot: n for slot, n in allowed.items() if n != 1} == {}, "a visitor's one turn got through twice"
    assert all(fresh.client().zcard(PREFIX + f"user:slot{slot}") == 1 for slot in allowed)


def test_an_app_whose_redis_does_not_answer_says_so_and_does_not_start() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"  # nothing listens there
    done = subprocess.run([sys.executable, "app.py", "--standin", "--visitor-turns", "2/hour", "--budget-store", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr[-1000:])
    redacted = url.replace(PASSWORD, "***")
    assert f"* The turn budget's store {redacted} cannot be reached (" in done.stderr, done.stderr[-1000:]
    assert "the app does not start without it: start Redis there, or fix --budget-store (env PHI4_BUDGET_STORE)" \
        in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "Running on" not in done.stdout  # nothing was served


def test_a_wrong_password_is_named_without_the_password(redis: RedisServer) -> None:
    url = redis.url.replace(PASSWORD, "not-the-password")
    with pytest.raises(StoreUnreachable) as caught:
        RedisBudget(RULE, url)
    assert "not-the-password" not in str(caught.value)
    assert str(caught.value).startswith(f"The turn budget's store redis://:***@127.0.0.1:{redis.port}/0 cannot be "
                                        "reached ("), str(caught.value)
    assert redact("redis://user:pw@[::1]:6380/2") == "redis://user:***@[::1]:6380/2"


def test_a_store_that_stops_answering_refuses_turns_with_a_sentence(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with redis_server(tmp_path) as server:
        budget = RedisBudget(RULE, server.url)
        assert budget.spend("addr:9.9.9.9") == Ok(1)
        server.stop()
        down = budget.spend("addr:9.9.9.9")
    assert isinstance(down, StoreDown), down
    assert down.sentence() == ("The app cannot count turns right now (its budget store does not answer), so this "
                               "turn was not sent; try again in a minute.")
    assert isinstance(budget.check("addr:9.9.9.9"), StoreDown)  # the door and the badge say no too
    # the badge says why, not "0 of 2 turns left" (which would read as the visitor's own turns spent)
    assert budget.describe("addr:9.9.9.9") == "turns cannot be counted right now (the budget store does not answer)"
    warned = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warned) == 1, warned  # once per outage, not once a turn
    assert PASSWORD not in caplog.text


@pytest.fixture(scope="module")
def redis_cluster(redis: RedisServer) -> Iterator[RunningCluster]:
    with start_standin(pace_ms=5, chunks=4) as standin:
        # PHI4_BUDGET_DB empty: the replicas get no shared SQLite file, so only Redis can share their count; and no
        # usage file either (the session's own, tests/conftest.py), so the usage log goes to Redis as on several hosts
        running = RunningCluster(standin, extra=("--visitor-turns", "2/hour", "--api-key", KEY, "--budget-store",
                                                 redis.url), env={"PHI4_BUDGET_DB": "", "PHI4_USAGE_DB": ""})
        try:
            yield running
        finally:
            running.stop()


def test_one_v1_key_gets_200_200_429_whichever_replica_answers_with_redis(redis: RedisServer,
                                                                          redis_cluster: RunningCluster) -> None:
    redis.client().flushdb()
    answers = [ask(redis_cluster.url) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 429, 429], answers
    assert {replica for _, replica, _ in answers} == {"r0", "r1"}, answers  # both replicas answered
    error = answers[2][2]["error"]
    assert isinstance(error, dict) and "2 turns" in str(error.get("message")), error
    # the count lives in Redis: emptied there, the key may chat again
    visitors = [k for k in redis.client().scan_iter(PREFIX + "*")]
    assert len(visitors) == 1 and redis.client().zcard(visitors[0]) == 2, visitors
    # the usage log is in Redis too (not in each host's own file): both replicas' turns in one view, the refused
    # ones not counted as turns (the budget refused them before they started)
    usage = RedisUsage(redis.url)
    try:
        deadline = time.monotonic() + 20.0  # each replica writes its rows in a thread of its own, soon after
        while redis.client().zcard(USAGE_KEY) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [(u.turns, u.failed) for u in usage.per_visitor(0.0)] == [(2, 0)], usage.per_visitor(0.0)
    finally:
        usage.close()
    redis.client().flushdb()
    assert ask(redis_cluster.url)[0] == 200
    assert PASSWORD not in redis_cluster.server.log_text()


def test_a_budget_store_that_is_not_redis_is_refused_at_the_flag_without_its_password(
        capsys: pytest.CaptureFixture[str]) -> None:
    from mirror.settings import parse_settings

    with pytest.raises(SystemExit) as exited:
        parse_settings(["--budget-store", "http://admin:hunter2@10.0.0.5:6379/0"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--budget-store: http://admin:***@10.0.0.5:6379/0 is not a Redis URL: give redis://" in err, err
    assert "hunter2" not in err
    settings = parse_settings(["--budget-store", "redis://:hunter2@10.0.0.5:6379/0"])
    assert settings.budget_store == "redis://:hunter2@10.0.0.5:6379/0" and "hunter2" not in repr(settings)

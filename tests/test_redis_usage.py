"""The usage log in Redis (mirror/visitors/redis_usage.py): replicas on several hosts share one view of who spent what.

Against a real ``redis-server`` (tests/redis_server.py). The SQLite store (mirror/visitors/usage.py) is the
reference: the same rows must sum to the same view in both. The cluster test that shows rows of both replicas in
one view is in tests/test_redis_budget.py (it shares that module's cluster).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from redis_server import PASSWORD, RedisServer, redis_server

from mirror.visitors.redis_usage import KEY, RedisUsage
from mirror.visitors.usage import UsageStore

ROWS = [  # visitor, source, outcome, at, answer_s, gpu_s
    ("user:ann", "chat", "ok", 1000.0, 2.0, None),
    ("user:ann", "api", "error", 1010.0, None, None),
    ("addr:10.0.0.7", "chat", "ok", 1020.0, 1.5, 0.5),
    ("user:ann", "qa", "stopped", 1030.0, 0.25, None),
    ("addr:10.0.0.7", "openai", "refused", 1040.0, None, 1.0),
    ("addr:10.0.0.9", "chat", "ok", 900.0, 9.0, None),  # before the span asked for below
]


def test_two_hosts_share_one_view_that_sums_as_the_sqlite_store_does(fresh: RedisServer, tmp_path: Path) -> None:
    one, two = RedisUsage(fresh.url), RedisUsage(fresh.url)  # two replicas on two hosts
    reference = UsageStore(tmp_path / "usage.sqlite3")
    try:
        for i, (visitor, source, outcome, at, answer_s, gpu_s) in enumerate(ROWS):
            (one if i % 2 else two).record(visitor, source, outcome, at, answer_s=answer_s, total_s=3.0, gpu_s=gpu_s)
            reference.record(visitor, source, outcome, at, answer_s=answer_s, total_s=3.0, gpu_s=gpu_s)
        assert one.drain() and two.drain()
        expected = reference.per_visitor(since=950.0)
        assert [u.visitor for u in expected] == ["user:ann", "addr:10.0.0.7"]  # the reference itself is as meant
        assert one.per_visitor(since=950.0) == expected == two.per_visitor(since=950.0)
        assert one.rows() == len(ROWS) == reference.rows()
    finally:
        one.close(), two.close(), reference.close()


def test_equal_turns_stay_two_rows(fresh: RedisServer) -> None:
    usage = RedisUsage(fresh.url)
    try:
        for _ in range(2):
            usage.record("user:ann", "chat", "ok", 1000.0, answer_s=1.0, total_s=1.0)
        assert [(u.visitor, u.turns) for u in usage.per_visitor(0.0)] == [("user:ann", 2)]
    finally:
        usage.close()


def test_old_rows_and_rows_beyond_the_cap_are_pruned(fresh: RedisServer) -> None:
    usage = RedisUsage(fresh.url, keep_s=100.0, max_rows=3)
    try:
        for at in (1.0, 2.0, 500.0, 501.0, 502.0, 503.0):
            usage.record("addr:1.1.1.1", "chat", "ok", at)
        assert usage.drain()
        assert usage.prune(now=550.0) == 3  # two older than 100 s, then one beyond the 3 newest
        found = fresh.client().zrange(KEY, 0, -1, withscores=True)
        assert [at for _, at in found] == [501.0, 502.0, 503.0]
    finally:
        usage.close()


def test_a_store_that_stops_answering_never_fails_nor_holds_a_turn(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with redis_server(tmp_path) as server:
        usage = RedisUsage(server.url)
        usage.record("user:ann", "chat", "ok", 1000.0)
        assert usage.drain()
        server.stop()
        for _ in range(3):  # three turns, each written (and dropped) on its own
            began = time.monotonic()
            usage.record("user:ann", "chat", "ok", 1001.0)  # queued: the turn does not wait for the dead store
            assert time.monotonic() - began < 0.5
            assert usage.drain(timeout=20.0)  # dropped within the client's own timeout (2 s), not kept waiting
    warned = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(warned) == 1, warned  # once per outage, not once a turn
    assert PASSWORD not in caplog.text
    assert "redis://:***@" in warned[0]

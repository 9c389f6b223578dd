"""The usage log in Redis, shared by replicas on several hosts: the Usage tab of any replica shows every turn.

Why: ``usage.UsageStore`` is one SQLite file, which the replicas of one host share (the user's data folder) but
replicas on several hosts cannot. With ``--budget-store redis://...`` every replica already reaches one Redis for the
turn budget, so the usage rows go there too (unless ``--usage-db FILE`` names a file of this host's own): one flag
on each replica, one view of who spent what.

How: one sorted set (``phi4-mirror:usage``), a member per turn (its fields as JSON and a random id, so two equal
turns stay two), scored by when the turn was sent. ``per_visitor`` reads the span asked for and sums it here, as the
SQLite store's ``GROUP BY`` does. Bounded like the file: rows older than ``keep_s`` and the oldest beyond
``max_rows`` are dropped every ``PRUNE_EVERY`` writes.

A turn's row is written by one background thread, in batches (one round trip for what piled up), never on the
turn's path: a visitor's turn neither waits for Redis nor fails with it. When Redis does not answer, the rows of that
moment are dropped and logged once per outage (the budget, which does refuse turns then, says so to the visitor).
No message text and no token is stored; the URL's password never reaches a log line (``redact``).
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from typing import Any

from .redis_budget import _why, connect, redact
from .usage import PRUNE_EVERY, VisitorUsage

log = logging.getLogger(__name__)

KEY = "phi4-mirror:usage"
BATCH = 256  # rows written in one round trip at most
DRAIN_S = 2.0  # how long a read waits for the rows already recorded to be written


class RedisUsage:
    """The usage log (see the module's docstring), with the interface of ``usage.UsageStore``."""

    def __init__(self, url: str, keep_s: float = 7 * 86400.0, max_rows: int = 200_000, key: str = KEY) -> None:
        self.url, self.where, self.key = url, redact(url), key
        self.keep_s, self.max_rows = keep_s, max_rows
        self._redis, self._errors = connect(url, "The usage log's store")
        self._rows: queue.SimpleQueue[tuple[float, str] | None] = queue.SimpleQueue()
        self._pending = 0  # recorded, not yet written (or dropped)
        self._written = threading.Condition()
        self._writes = 0
        self._down_logged = False
        self._writer = threading.Thread(target=self._write_loop, name="usage-redis-writer", daemon=True)
        self._writer.start()

    @property
    def path(self) -> str:
        """Where the rows are, for the host's Usage tab (the URL without its password)."""
        return self.where

    def record(self, visitor: str, source: str, outcome: str, at: float, answer_s: float | None = None,
               total_s: float | None = None, gpu_s: float | None = None) -> None:
        """One turn, queued for the writer thread. Never raises and never waits (see the module's docstring)."""
        row = {"id": secrets.token_hex(6), "visitor": visitor, "source": source, "outcome": outcome,
               "answer_s": answer_s, "total_s": total_s, "gpu_s": gpu_s}
        with self._written:
            self._pending += 1
        self._rows.put((at, json.dumps(row, separators=(",", ":"))))

    def _write_loop(self) -> None:
        while True:
            first = self._rows.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < BATCH:
                try:
                    more = self._rows.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._rows.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._write(batch)
            with self._written:
                self._pending -= len(batch)
                self._written.notify_all()

    def _write(self, batch: list[tuple[float, str]]) -> None:
        try:
            self._redis.zadd(self.key, {member: at for at, member in batch})
            self._down_logged = False
        except self._errors as exc:
            if not self._down_logged:  # once per outage, not once per turn
                self._down_logged = True
                log.warning("the usage log's store %s does not answer (%s): turns go unrecorded until it does",
                            self.where, _why(exc, self.url))
            return
        self._writes += len(batch)
        if self._writes >= PRUNE_EVERY:
            self._writes = 0
            try:
                self.prune()
            except self._errors as exc:
                log.warning("could not prune the usage log in %s (%s)", self.where, _why(exc, self.url))

    def drain(self, timeout: float = DRAIN_S) -> bool:
        """Wait until the rows recorded so far are written (or dropped); False when ``timeout`` ran out first."""
        with self._written:
            return self._written.wait_for(lambda: self._pending == 0, timeout)

    def prune(self, now: float | None = None) -> int:
        """Drop rows older than ``keep_s`` and the oldest beyond ``max_rows``; how many went."""
        now = time.time() if now is None else now
        pipe = self._redis.pipeline()
        pipe.zremrangebyscore(self.key, "-inf", f"({now - self.keep_s}")
        pipe.zremrangebyrank(self.key, 0, -(self.max_rows + 1))
        aged, over = pipe.execute()
        return int(aged) + int(over)

    def rows(self) -> int:
        self.drain()
        return int(self._redis.zcard(self.key))

    def per_visitor(self, since: float) -> list[VisitorUsage]:
        """Each visitor's turns since ``since`` (unix seconds), the busiest first (as ``UsageStore.per_visitor``)."""
        self.drain()
        found = self._redis.zrangebyscore(self.key, since, "+inf", withscores=True)
        return summarise((json.loads(member), float(at)) for member, at in found)

    def close(self) -> None:
        self._rows.put(None)
        self._writer.join(timeout=DRAIN_S)
        self._redis.close()


def summarise(rows: Any) -> list[VisitorUsage]:
    """``(row, at)`` pairs summed per visitor, the busiest first: the SQLite store's query, in Python."""
    sums: dict[str, dict[str, Any]] = {}
    for row, at in rows:
        one = sums.setdefault(row["visitor"], {"turns": 0, "failed": 0, "answer_s": 0.0, "gpu_s": None, "last": at})
        one["turns"] += 1
        one["failed"] += row["outcome"] not in ("ok", "stopped")
        one["answer_s"] += row.get("answer_s") or 0.0
        if row.get("gpu_s") is not None:
            one["gpu_s"] = (one["gpu_s"] or 0.0) + row["gpu_s"]
        one["last"] = max(one["last"], at)
    return sorted((VisitorUsage(v, s["turns"], s["failed"], s["answer_s"], s["gpu_s"], s["last"])
                   for v, s in sums.items()), key=lambda u: (-u.turns, u.visitor))

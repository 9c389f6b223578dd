"""The visitors' turn budget counted in one SQLite file, shared by every replica of a cluster on one host.

Why: ``mirror.visitors.budget.Budget`` counts in the process's memory, so behind
``python -m mirror.cluster --replicas N`` a visitor whom nginx sends to each replica in turn (every ``/v1`` request,
round robin) got N times the turns the host set. Here a turn is checked and counted in one ``BEGIN IMMEDIATE``
transaction (SQLite's write lock on the file), so two replicas cannot both let the same visitor's last turn through.
``mirror/cluster.py`` points every replica at one file (``PHI4_BUDGET_DB``); replicas on several hosts share a Redis
server instead (``--budget-store``, ``mirror.visitors.redis_budget``).

Same rules and sentences as ``Budget`` (it is one); only where the stamps live differs. Each call is a small
transaction that may wait for another replica's, so the chat service calls it in a thread (``blocking``).
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from ..settings import Rule
from .budget import Budget, Ok, Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_turns (visitor TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS budget_turns_by_visitor ON budget_turns (visitor, at);
"""


class SharedBudget(Budget):
    """A ``Budget`` whose stamps are rows of ``budget_turns`` in ``path`` (see the module's docstring)."""

    blocking = True

    def __init__(self, rule: Rule | None, path: str | Path, admins: Iterable[str] = (),
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__(rule, admins, clock if clock is not None else time.time)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def _stamps(self, visitor: str, now: float) -> deque[float]:
        assert self.rule is not None
        rows = self._db.execute("SELECT at FROM budget_turns WHERE visitor = ? AND at > ? ORDER BY at",
                                (visitor, now - self.rule.period_s)).fetchall()
        return deque(at for (at,) in rows)

    def check(self, visitor: str) -> Verdict:
        if self.exempt(visitor):
            return Ok(None)
        with self._lock:
            now = self.clock()
            return self._verdict(self._stamps(visitor, now), now)

    def spend(self, visitor: str) -> Verdict:
        """Check and count in one transaction that holds the file's write lock: concurrent turns of one visitor
        on any replica cannot all slip in."""
        if self.exempt(visitor):
            return Ok(None)
        assert self.rule is not None
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock()
                # every visitor's aged-out turns go (the table holds at most visitors x turns rows)
                self._db.execute("DELETE FROM budget_turns WHERE at <= ?", (now - self.rule.period_s,))
                verdict = self._verdict(self._stamps(visitor, now), now)
                if isinstance(verdict, Ok):
                    self._db.execute("INSERT INTO budget_turns (visitor, at) VALUES (?, ?)", (visitor, now))
                    verdict = Ok(None if verdict.left is None else verdict.left - 1)
                self._db.execute("COMMIT")
                return verdict
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def refund(self, visitor: str) -> None:
        if self.exempt(visitor):
            return
        with self._lock:
            self._db.execute("DELETE FROM budget_turns WHERE rowid = (SELECT rowid FROM budget_turns "
                             "WHERE visitor = ? ORDER BY at DESC LIMIT 1)", (visitor,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


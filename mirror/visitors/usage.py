"""Who spent what: one row per turn in a small SQLite file of its own, kept across restarts, for the host's Usage
view.

Why its own file: the QA store (issue 13) is built separately, and a usage log must survive that store being
moved or wiped. Default path: ``usage.sqlite3`` in the user's data folder (``platformdirs``); ``--usage-db FILE``.

What a row holds: when the turn was sent, the visitor (``user:NAME`` or ``addr:HOST``), where from (``chat``,
``api``, ``qa``, ``openai``), how it ended (``ok``, ``error``, ``stopped``, ``refused``), the seconds from the
Space starting the job to its last word (``answer_s``: the closest the app can see to GPU time), the whole
turn's seconds, and ``gpu_s``, the GPU seconds the Space reported for the turn. Neither the real ZeroGPU Space nor
the stand-in reports them per turn (ZeroGPU only says how much quota is left when it runs low, or refuses when it
is spent), so ``gpu_s`` stays NULL until a Space does; the view then shows answering time instead and says so.

Bounded: rows older than ``keep_s`` (default 7 days) are deleted, and beyond ``max_rows`` the oldest go; both are
checked every ``PRUNE_EVERY`` inserts and at open. WAL mode, so the Usage view reads while turns write;
``PRAGMA user_version`` carries the schema version. No message text and no token is ever stored.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PRUNE_EVERY = 200
SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    visitor TEXT NOT NULL,
    source TEXT NOT NULL,
    outcome TEXT NOT NULL,
    answer_s REAL,
    total_s REAL,
    gpu_s REAL
);
CREATE INDEX IF NOT EXISTS turns_at ON turns (at);
"""


def default_path() -> Path:
    """``usage.sqlite3`` in the user's data folder (``~/.local/share/phi4-mirror`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("phi4-mirror", appauthor=False)) / "usage.sqlite3"


@dataclass(frozen=True)
class VisitorUsage:
    """One visitor's turns over a span of time."""

    visitor: str
    turns: int
    failed: int
    answer_s: float  # the sum of answering times of the turns that started
    gpu_s: float | None  # None: the Space reported no GPU seconds for these turns
    last_at: float


class UsageLog(Protocol):
    """What the chat, the QA tab and the Usage tab need of a usage log: this file's ``UsageStore``, or
    ``redis_usage.RedisUsage`` for replicas on several hosts."""

    @property
    def path(self) -> Path | str: ...

    def record(self, visitor: str, source: str, outcome: str, at: float, answer_s: float | None = None,
               total_s: float | None = None, gpu_s: float | None = None) -> None: ...

    def per_visitor(self, since: float) -> list[VisitorUsage]: ...

    def rows(self) -> int: ...

    def close(self) -> None: ...


class UsageStore:
    """The usage file (see the module's docstring). Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path, keep_s: float = 7 * 86400.0, max_rows: int = 200_000) -> None:
        self.path = Path(path)
        self.keep_s, self.max_rows = keep_s, max_rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._inserts = 0
        self.prune()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has usage schema {version}; this app knows up to {SCHEMA_VERSION}. "
                               "Use a newer app or another --usage-db file.")
        with self._db:
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def record(self, visitor: str, source: str, outcome: str, at: float, answer_s: float | None = None,
               total_s: float | None = None, gpu_s: float | None = None) -> None:
        """One turn. Never raises: the usage log must not fail a visitor's turn (a failure is logged)."""
        try:
            with self._lock, self._db:
                self._db.execute("INSERT INTO turns (at, visitor, source, outcome, answer_s, total_s, gpu_s) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (at, visitor, source, outcome, answer_s, total_s,
                                                                  gpu_s))
                self._inserts += 1
                due = self._inserts % PRUNE_EVERY == 0
            if due:
                self.prune()
        except sqlite3.Error as exc:
            log.warning("could not record a turn in the usage store %s: %s", self.path, exc)

    def prune(self, now: float | None = None) -> int:
        """Delete rows older than ``keep_s`` and the oldest beyond ``max_rows``; how many went."""
        now = time.time() if now is None else now
        with self._lock, self._db:
            gone = self._db.execute("DELETE FROM turns WHERE at < ?", (now - self.keep_s,)).rowcount
            gone += self._db.execute("DELETE FROM turns WHERE id <= (SELECT id FROM turns ORDER BY id DESC "
                                     "LIMIT 1 OFFSET ?)", (self.max_rows,)).rowcount
        return gone

    def rows(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM turns").fetchone()[0])

    def per_visitor(self, since: float) -> list[VisitorUsage]:
        """Each visitor's turns since ``since`` (unix seconds), the busiest first."""
        with self._lock:
            found = self._db.execute(
                "SELECT visitor, COUNT(*), SUM(outcome NOT IN ('ok', 'stopped')), COALESCE(SUM(answer_s), 0), "
                "SUM(gpu_s), MAX(at) FROM turns WHERE at >= ? GROUP BY visitor ORDER BY COUNT(*) DESC, visitor",
                (since,)).fetchall()
        return [VisitorUsage(v, n, int(f or 0), float(a), None if g is None else float(g), float(t))
                for v, n, f, a, g, t in found]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_store(path: Path | None) -> UsageStore | None:
    """The usage store at ``path`` (default: ``default_path()``), or None (logged) when it cannot be opened: the
    app then serves without a usage log rather than not at all."""
    where = path or default_path()
    try:
        return UsageStore(where)
    except (sqlite3.Error, OSError, RuntimeError) as exc:
        log.warning("the usage store %s cannot be used (%s); turns are not recorded", where, exc)
        return None

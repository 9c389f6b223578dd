"""The QA store: every run, case, result and mark in one SQLite file, so a QA person's work outlives the process.

Why SQLite (standard library ``sqlite3``): one file, no server, safe for the app and a ``python -m phi4_bridge qa``
process writing at once (WAL: readers never block the writer, a second writer waits ``busy_timeout``), and each
result is committed the moment its case finishes, so a crash or a SIGKILL loses at most the turns in flight.

Tables (``SCHEMA_VERSION`` 2; ``MIGRATIONS`` are the code that brings any older file up to date, each in its own
transaction, the version kept in ``PRAGMA user_version``):

- ``runs``: when, who, which Space and its stage, the bridge settings and Space options (JSON), the case source
  (a file *name*, never a path), where it came from (``cli`` / ``tab``), its parent (a re-run), its status.
- ``cases``: per run, the case as it was run (id, position, prompt, expect, an invalid line's reason).
- ``blobs``: each file's bytes once, by BLAKE2b content hash; ``case_files`` names them per case.
- ``results``: one row per (run, case): reply, timings, status, error type and text. Resuming a run replaces a
  case's row (never a second one), and a finished row is never overwritten by nothing.
- ``marks``: good/bad, note, who, when, appended: the latest row is the mark, the earlier ones its history.

Files are kept *inside* the database: nothing the store hands out is a path, so no reader of the store (the app's
tab, an export) can be made to open a file elsewhere on the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import qa_db_path
from .cases import Case

SCHEMA_VERSION = 2
MAX_BLOB_BYTES = 50 * 1024 * 1024  # larger than any file the bridge can send (25 MB)

# v1: the first schema. A mark was two columns of its result (overwritten: no history, no author).
V1 = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, finished_at REAL, space TEXT, space_url TEXT,
    stage TEXT, settings TEXT, options TEXT, source TEXT, origin TEXT NOT NULL, parent_id INTEGER REFERENCES runs(id),
    resume_key TEXT, status TEXT NOT NULL DEFAULT 'running', pid INTEGER);
CREATE TABLE cases (run_id INTEGER NOT NULL REFERENCES runs(id), case_id TEXT NOT NULL, position INTEGER NOT NULL,
    line INTEGER, prompt TEXT NOT NULL, expect TEXT NOT NULL DEFAULT '[]', invalid TEXT, fingerprint TEXT,
    PRIMARY KEY (run_id, case_id));
CREATE TABLE blobs (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE case_files (run_id INTEGER NOT NULL, case_id TEXT NOT NULL, position INTEGER NOT NULL,
    role TEXT NOT NULL, name TEXT NOT NULL, hash TEXT REFERENCES blobs(hash), PRIMARY KEY (run_id, case_id, position));
CREATE TABLE results (run_id INTEGER NOT NULL, case_id TEXT NOT NULL, status TEXT NOT NULL, passed INTEGER,
    reply TEXT, ttft_s REAL, upload_s REAL, total_s REAL, error_type TEXT, error TEXT, retryable INTEGER,
    fingerprint TEXT, finished_at REAL, mark TEXT, note TEXT, PRIMARY KEY (run_id, case_id));
CREATE INDEX runs_by_time ON runs(created_at);
"""

# v2: marks become a history (who and when, appended); runs say who started them.
V2 = """
CREATE TABLE marks (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, case_id TEXT NOT NULL,
    mark TEXT CHECK (mark IN ('good', 'bad') OR mark IS NULL), note TEXT, who TEXT, at REAL NOT NULL);
CREATE INDEX marks_by_case ON marks(run_id, case_id, id);
INSERT INTO marks (run_id, case_id, mark, note, who, at)
    SELECT run_id, case_id, mark, note, NULL, COALESCE(finished_at, 0) FROM results
    WHERE mark IS NOT NULL OR note IS NOT NULL;
ALTER TABLE results DROP COLUMN mark;
ALTER TABLE results DROP COLUMN note;
ALTER TABLE runs ADD COLUMN who TEXT;
CREATE INDEX results_by_status ON results(run_id, status);
"""

MIGRATIONS: list[str] = [V1, V2]  # MIGRATIONS[n] brings a version-n file to version n + 1
assert len(MIGRATIONS) == SCHEMA_VERSION

RESULT_COLUMNS = ("status", "passed", "reply", "ttft_s", "upload_s", "total_s", "error_type", "error", "retryable",
                  "fingerprint", "finished_at")


# Where the store lives unless told: ``$PHI4_QA_DB``, else qa.sqlite3 in the user's data folder. The environment is
# read in ``phi4_bridge.config`` (the library's one reader of it); this name stays for the store's callers.
default_path = qa_db_path


def file_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class QAStore:
    """One open store. Thread-safe (one connection behind a lock): the app calls it from gradio's event loop and
    from its worker threads alike; other processes share the file through SQLite's own locking."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
        self._db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    # ---- schema -------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Bring the file up to ``SCHEMA_VERSION``, one migration per transaction; the version reached.

        The version is read inside each migration's transaction: processes that open a new file at once (a
        cluster's replicas starting together) would otherwise all read 0 and all create the same tables."""
        while True:
            with self.transaction():
                version = self.version
                if version > SCHEMA_VERSION:
                    raise RuntimeError(f"{self.path} has QA store version {version}, newer than this program's "
                                       f"{SCHEMA_VERSION}; upgrade phi4-mirror to open it.")
                if version == SCHEMA_VERSION:
                    return version
                for statement in _statements(MIGRATIONS[version]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error) under the store's lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- runs ---------------------------------------------------------------------------------------------

    def start_run(self, *, origin: str, source: str = "", space: str = "", space_url: str = "", stage: str = "",
                  settings: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                  who: str | None = None, parent_id: int | None = None, resume_key: str | None = None) -> int:
        """A new run; its id. ``source`` is shown to every visitor of the tab, so only a file's name goes in."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (created_at, space, space_url, stage, settings, options, source, origin, "
                "parent_id, resume_key, status, pid, who) VALUES (?,?,?,?,?,?,?,?,?,?, 'running', ?, ?)",
                (time.time(), space, space_url, stage, json.dumps(settings or {}), json.dumps(options or {}),
                 Path(source).name if source else "", origin, parent_id, resume_key, os.getpid(), who))
            assert cur.lastrowid is not None  # an INSERT always sets it
            return cur.lastrowid

    def resume_run(self, run_id: int) -> None:
        """The same run goes on (this process now owns it)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET status='running', pid=?, finished_at=NULL WHERE id=?", (os.getpid(), run_id))

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, time.time(), run_id))

    def find_resumable(self, resume_key: str) -> int | None:
        rows = self.query("SELECT id FROM runs WHERE resume_key=? ORDER BY id DESC LIMIT 1", (resume_key,))
        return int(rows[0]["id"]) if rows else None

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM runs WHERE id=?", (run_id,))
        return _run_dict(rows[0]) if rows else None

    # ---- cases and their files ----------------------------------------------------------------------------

    def put_cases(self, run_id: int, cases: list[Case], read: Callable[[str], bytes | None] | None = None) -> None:
        """Record the run's cases (a resumed run's edited cases replace their rows) and each file's bytes once.

        ``read(path)`` gives a file's bytes or None; the default reads the path (the command line's own files).
        A case whose file cannot be read keeps the file's name with no bytes (its result says why)."""
        read = read or _read_file
        stored: dict[str, str | None] = {}
        with self.transaction() as db:
            for position, case in enumerate(cases):
                db.execute("INSERT OR REPLACE INTO cases (run_id, case_id, position, line, prompt, expect, invalid, "
                           "fingerprint) VALUES (?,?,?,?,?,?,?,?)",
                           (run_id, case.id, position, case.line, case.prompt, json.dumps(case.expect),
                            case.invalid, None))
                db.execute("DELETE FROM case_files WHERE run_id=? AND case_id=?", (run_id, case.id))
                named = [("image", n) for n in case.images] + [("audio", n) for n in case.audios]
                for index, (role, name) in enumerate(named):
                    path = case.locate(name)
                    if path not in stored:
                        stored[path] = self._put_blob(db, read(path) if path else None)
                    db.execute("INSERT INTO case_files (run_id, case_id, position, role, name, hash) "
                               "VALUES (?,?,?,?,?,?)", (run_id, case.id, index, role, name, stored[path]))

    @staticmethod
    def _put_blob(db: sqlite3.Connection, data: bytes | None) -> str | None:
        if data is None or len(data) > MAX_BLOB_BYTES:
            return None
        digest = file_hash(data)
        db.execute("INSERT OR IGNORE INTO blobs (hash, size, data) VALUES (?,?,?)", (digest, len(data), data))
        return digest

    def stored_bytes(self) -> int:
        """The size of every file the store keeps."""
        return int(self.query("SELECT COALESCE(SUM(size), 0) FROM blobs")[0][0])

    def new_bytes(self, paths: Iterable[str], read: Callable[[str], bytes | None]) -> int:
        """How many bytes storing these files would add (files already kept, by content, add nothing). Reads each
        file once and keeps none of it, so a run can be refused before anything of it is stored."""
        seen: set[str] = set()
        total = 0
        for path in dict.fromkeys(paths):
            data = read(path)
            if data is None or len(data) > MAX_BLOB_BYTES:
                continue
            digest = file_hash(data)
            if digest not in seen and not self.query("SELECT 1 FROM blobs WHERE hash=?", (digest,)):
                seen.add(digest)
                total += len(data)
        return total

    def prune(self, older_than: float) -> int:
        """Delete the runs created before ``older_than`` (unix seconds) with their cases, results and marks, then
        every file no run names any more; how many runs went. SQLite reuses the freed pages, so the file stops
        growing rather than shrinking."""
        with self.transaction() as db:
            old = [r[0] for r in db.execute("SELECT id FROM runs WHERE created_at < ? AND status != 'running'",
                                            (older_than,))]
            for run_id in old:
                for table in ("marks", "results", "case_files", "cases"):
                    db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
                db.execute("UPDATE runs SET parent_id=NULL WHERE parent_id=?", (run_id,))
                db.execute("DELETE FROM runs WHERE id=?", (run_id,))
            if old:
                db.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM case_files WHERE hash IS NOT NULL)")
        return len(old)

    def blob(self, digest: str) -> bytes | None:
        rows = self.query("SELECT data FROM blobs WHERE hash=?", (digest,))
        return bytes(rows[0]["data"]) if rows else None

    def case_files(self, run_id: int, case_ids: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Per case: ``{"role", "name", "hash", "size"}`` in the case's order (``hash`` None: no bytes kept)."""
        sql = ("SELECT f.case_id, f.role, f.name, f.hash, b.size FROM case_files f LEFT JOIN blobs b ON b.hash=f.hash "
               "WHERE f.run_id=?")
        params: list[Any] = [run_id]
        ids = None if case_ids is None else list(case_ids)
        if ids is not None:
            sql += f" AND f.case_id IN ({','.join('?' * len(ids))})"
            params += ids
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.query(sql + " ORDER BY f.case_id, f.position", params):
            out.setdefault(row["case_id"], []).append({k: row[k] for k in ("role", "name", "hash", "size")})
        return out

    # ---- results and marks --------------------------------------------------------------------------------

    def record(self, run_id: int, result: dict[str, Any]) -> None:
        """Keep one case's result, committed now: the row of (run, case) is replaced, never duplicated."""
        values = [result.get(k) for k in RESULT_COLUMNS]
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO results (run_id, case_id, {', '.join(RESULT_COLUMNS)}) "
                       f"VALUES (?, ?, {', '.join('?' * len(RESULT_COLUMNS))})", [run_id, str(result["id"]), *values])

    def record_missing(self, run_id: int, make: Callable[[str], dict[str, Any]]) -> int:
        """A result for every case of the run that has none (e.g. "not run" after a Stop); how many."""
        missing = [r["case_id"] for r in self.query(
            "SELECT c.case_id FROM cases c LEFT JOIN results r ON r.run_id=c.run_id AND r.case_id=c.case_id "
            "WHERE c.run_id=? AND r.case_id IS NULL", (run_id,))]
        for case_id in missing:
            self.record(run_id, {**make(case_id), "id": case_id})
        return len(missing)

    def latest_results(self, run_id: int) -> dict[str, dict[str, Any]]:
        """The run's results by case id (the resume check reads these)."""
        return {r["case_id"]: {"id": r["case_id"], **{k: r[k] for k in RESULT_COLUMNS}}
                for r in self.query("SELECT * FROM results WHERE run_id=?", (run_id,))}

    def carry_over(self, from_run: int, to_run: int, case_ids: Iterable[str]) -> None:
        """Copy results (and the current marks) of ``case_ids`` from a run into its re-run."""
        cols = ", ".join(RESULT_COLUMNS)
        with self.transaction() as db:
            for case_id in case_ids:
                db.execute(f"INSERT OR REPLACE INTO results (run_id, case_id, {cols}) SELECT ?, case_id, {cols} "
                           "FROM results WHERE run_id=? AND case_id=?", (to_run, from_run, case_id))

    def copy_cases(self, from_run: int, to_run: int) -> None:
        """A re-run has the same cases and files as its parent (no bytes are copied: they are shared by hash)."""
        with self.transaction() as db:
            db.execute("INSERT INTO cases SELECT ?, case_id, position, line, prompt, expect, invalid, fingerprint "
                       "FROM cases WHERE run_id=?", (to_run, from_run))
            db.execute("INSERT INTO case_files SELECT ?, case_id, position, role, name, hash FROM case_files "
                       "WHERE run_id=?", (to_run, from_run))

    def mark(self, run_id: int, case_id: str, mark: str | None, note: str | None, who: str | None) -> bool:
        """Append a mark (``None`` clears it); False when the run has no such case."""
        if mark not in ("good", "bad", None):
            raise ValueError("a mark is 'good', 'bad' or None")
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM cases WHERE run_id=? AND case_id=?", (run_id, case_id)).fetchone():
                return False
            db.execute("INSERT INTO marks (run_id, case_id, mark, note, who, at) VALUES (?,?,?,?,?,?)",
                       (run_id, case_id, mark, (note or "").strip() or None, who, time.time()))
        return True

    def mark_history(self, run_id: int, case_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT mark, note, who, at FROM marks WHERE run_id=? AND case_id=? ORDER BY id",
                          (run_id, case_id))
        return [dict(r) for r in rows]


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for key in ("settings", "options"):
        try:
            run[key] = json.loads(run.get(key) or "{}")
        except ValueError:
            run[key] = {}
    return run


def _read_file(path: str) -> bytes | None:
    try:
        if os.path.getsize(path) > MAX_BLOB_BYTES:
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (``executescript`` would commit the transaction on its own)."""
    return [s.strip() for s in script.split(";") if s.strip()]

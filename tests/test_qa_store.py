"""The QA store (``phi4_bridge.qa.store``): its schema and migrations, a run killed with SIGKILL and resumed, marks as
a history, the review's filters and pages, and the command line's ``runs`` and ``export``; real SQLite files, the
real ``python -m phi4_bridge qa`` process and the real stand-in Space."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from phi4_bridge.cli.main import main
from phi4_bridge.qa.cases import Case
from phi4_bridge.qa.review import compare, counts, page
from phi4_bridge.qa.store import QAStore, default_path
from phi4_standin.launcher import configure, stats

ROOT = Path(__file__).resolve().parents[1]

# The store's first schema, as version 1 files were written (marks were two columns of a result, overwritten).
V1_SQL = """
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
INSERT INTO runs VALUES (1, 1764000000.0, 1764000100.0, 'microsoft/phi-4-multimodal', 'https://x.hf.space', 'RUNNING',
    '{"concurrency": 2}', '{}', 'cases.jsonl', 'cli', NULL, 'key1', 'finished', 4242);
INSERT INTO cases VALUES (1, 'cat', 0, 1, 'What animal?', '["cat"]', NULL, NULL);
INSERT INTO cases VALUES (1, 'dog', 1, 2, 'And this?', '[]', NULL, NULL);
INSERT INTO blobs VALUES ('abc123', 3, X'010203');
INSERT INTO case_files VALUES (1, 'cat', 0, 'image', 'cat.png', 'abc123');
INSERT INTO results VALUES (1, 'cat', 'pass', 1, 'A cat.', 0.5, 0.1, 1.5, NULL, NULL, 0, 'f1', 1764000050.0,
    'good', 'clear answer');
INSERT INTO results VALUES (1, 'dog', 'pass', NULL, 'A dog.', 0.4, 0.1, 1.2, NULL, NULL, 0, 'f2', 1764000060.0,
    NULL, NULL);
PRAGMA user_version = 1;
"""


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_a_version_1_file_is_migrated_keeping_its_runs_results_and_marks(tmp_path):
    old = tmp_path / "v1.sqlite3"
    with sqlite3.connect(old) as db:
        db.executescript(V1_SQL)
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(old, copy)

    store = QAStore(copy)
    assert store.version == 2
    assert store.mark_history(1, "cat") == [{"mark": "good", "note": "clear answer", "who": None, "at": 1764000050.0}]
    assert store.mark_history(1, "dog") == []
    rows, total = page(store, 1, limit=None)
    assert total == 2 and [(r["id"], r["status"], r["reply"], r["mark"], r["note"]) for r in rows] == [
        ("cat", "pass", "A cat.", "good", "clear answer"), ("dog", "pass", "A dog.", None, None)]
    assert rows[0]["files"] == [{"role": "image", "name": "cat.png", "hash": "abc123", "size": 3}]
    assert store.blob("abc123") == b"\x01\x02\x03"
    # The new history goes on from there: a second mark is appended, the first one stays.
    assert store.mark(1, "cat", "bad", "on second look, a lynx", "alice")
    assert [(m["mark"], m["note"], m["who"]) for m in store.mark_history(1, "cat")] == [
        ("good", "clear answer", None), ("bad", "on second look, a lynx", "alice")]
    assert page(store, 1, limit=None)[0][0]["mark"] == "bad"
    store.close()

    with sqlite3.connect(copy) as db:
        assert "mark" not in columns(db, "results") and "note" not in columns(db, "results")
        assert "who" in columns(db, "runs")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with sqlite3.connect(old) as db:  # the original is untouched
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1 and "mark" in columns(db, "results")
    assert QAStore(copy).version == 2  # opening again migrates nothing


def test_a_new_file_gets_the_current_schema_and_a_newer_file_is_refused(tmp_path):
    assert QAStore(tmp_path / "new" / "qa.sqlite3").version == 2
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(RuntimeError, match="newer than this program's 2"):
        QAStore(newer)


def test_default_location_is_the_users_data_folder_unless_phi4_qa_db_says(monkeypatch, tmp_path):
    monkeypatch.delenv("PHI4_QA_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "phi4-mirror" / "qa.sqlite3"
    monkeypatch.setenv("PHI4_QA_DB", str(tmp_path / "mine.sqlite3"))
    assert default_path() == tmp_path / "mine.sqlite3"


def fill(store: QAStore, run_id: int, statuses: list[str], replies: list[str]) -> None:
    cases = [Case(id=f"c{i:02d}", line=i + 1, prompt=f"prompt {i}") for i in range(len(statuses))]
    store.put_cases(run_id, cases)
    for case, status, reply in zip(cases, statuses, replies):
        store.record(run_id, {"id": case.id, "status": status, "reply": reply})


def test_marks_filters_pages_and_comparison_of_two_runs(tmp_path):
    store = QAStore(tmp_path / "qa.sqlite3")
    first = store.start_run(origin="cli", source="/home/someone/cases.jsonl")
    fill(store, first, ["pass"] * 20 + ["fail"] * 5 + ["error"] * 5, ["same"] * 30)
    second = store.start_run(origin="tab", source="cases.jsonl", parent_id=first)
    # c00 breaks, c20 is fixed, c01 answers differently, the rest as before
    statuses = ["fail"] + ["pass"] * 19 + ["pass"] + ["fail"] * 4 + ["error"] * 5
    fill(store, second, statuses, ["same", "other"] + ["same"] * 28)
    assert store.run(first)["source"] == "cases.jsonl"  # a name, never the path
    assert store.mark(second, "c03", "bad", "wrong colour", "bob") and store.mark(second, "c04", "good", "", None)
    assert not store.mark(second, "no-such-case", "bad", "", None)

    assert counts(store, second) == {"total": 30, "pass": 20, "fail": 5, "error": 5, "not_run": 0}
    rows, total = page(store, second, offset=20, limit=20)
    assert total == 30 and [r["id"] for r in rows] == [f"c{i:02d}" for i in range(20, 30)]
    assert [r["id"] for r in page(store, second, filter="bad")[0]] == ["c03"]
    assert page(store, second, filter="failed")[1] == 10
    assert page(store, second, filter="unmarked")[1] == 28
    assert [r["id"] for r in page(store, second, filter="changed")[0]] == ["c00", "c01", "c20"]

    tally, rows = compare(store, first, second)
    assert tally == {"fixed": 1, "broke": 1, "changed": 1, "same": 27, "only_a": 0, "only_b": 0}
    assert {r["id"]: r["kind"] for r in rows if r["kind"] != "same"} == {"c00": "broke", "c01": "changed",
                                                                          "c20": "fixed"}


# ---- the command line, killed and resumed ---------------------------------------------------------------------

def make_case_file(folder: Path, n: int) -> Path:
    Image.new("RGB", (37, 23), "red").save(folder / "red.png")
    path = folder / "cases.jsonl"
    path.write_text("".join(json.dumps({"id": f"good-{i}", "image": "red.png", "prompt": f"Case number {i}",
                                        "expect": f"Case number {i}"}) + "\n" for i in range(n)))
    return path


def finished_in(db_path: Path) -> dict[str, tuple[float, str]]:
    if not db_path.exists():
        return {}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        try:
            rows = db.execute("SELECT case_id, finished_at, reply FROM results").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}
    return {case_id: (at, reply) for case_id, at, reply in rows}


def cli(standin, cases: Path, out: Path, db: Path, *extra: str) -> list[str]:
    return ["qa", str(cases), "--out", str(out), "--db", str(db), "--space-url", standin.url,
            "--hub-url", standin.hub_url, "--no-progress", *extra]


def test_a_run_killed_with_sigkill_resumes_as_the_same_run(standin_clean, tmp_path, capsys):
    cases = make_case_file(tmp_path, 6)
    db, out = tmp_path / "store" / "qa.sqlite3", tmp_path / "out"
    configure(standin_clean.url, pace_ms=120)  # about 1 s a case
    proc = subprocess.Popen([sys.executable, "-m", "phi4_bridge", *cli(standin_clean, cases, out, db),
                             "--concurrency", "1"], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(finished_in(db)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        configure(standin_clean.url, pace_ms=5)
    before_kill = finished_in(db)
    assert 2 <= len(before_kill) < 6, before_kill

    assert main(["qa", "runs", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "cases.jsonl · cli" in listed and "· interrupted ·" in listed  # its process is gone: not "running"
    calls = stats(standin_clean.url)["calls"]
    assert main(cli(standin_clean, cases, out, db)) == 0
    assert stats(standin_clean.url)["calls"] - calls == 6 - len(before_kill)  # nothing finished is sent again

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), MIN(status), MAX(status) FROM runs").fetchone() == (1, "finished",
                                                                                                  "finished")
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT case_id) FROM results").fetchone() == (6, 6)
        assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 6
        assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1  # red.png's bytes, once
        assert conn.execute("SELECT COUNT(*) FROM results WHERE status = 'pass'").fetchone()[0] == 6
    after = finished_in(db)
    for case_id, kept in before_kill.items():
        assert after[case_id] == kept  # not redone, not lost
    assert sorted(after) == [f"good-{i}" for i in range(6)]


def test_runs_lists_and_export_prints_a_run_even_after_its_files_are_gone(standin_clean, tmp_path, capsys):
    cases = make_case_file(tmp_path, 2)
    db = tmp_path / "qa.sqlite3"
    assert main(cli(standin_clean, cases, tmp_path / "out", db)) == 0
    capsys.readouterr()
    assert main(["qa", "runs", "--db", str(db)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].startswith("Run 1 · ") and "cases.jsonl · cli" in listed[0]
    assert listed[0].endswith("· finished · 2 cases, 2 passed, 0 failed")

    (tmp_path / "red.png").unlink()  # the store has the bytes: the report still shows the picture
    assert main(["qa", "export", "1", "--format", "html", "--db", str(db)]) == 0
    page_html = capsys.readouterr().out
    assert page_html.count("data:image/jpeg;base64,") == 2 and "Case number 1" in page_html
    assert main(["qa", "export", "1", "--format", "csv", "--db", str(db)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["id"], r["image"], r["status"]) for r in rows] == [("good-0", "red.png", "pass"),
                                                                  ("good-1", "red.png", "pass")]
    assert main(["qa", "export", "1", "--format", "jsonl", "--db", str(db)]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["good-0", "good-1"]
    assert main(["qa", "export", "7", "--db", str(db)]) == 2
    assert "no run 7" in capsys.readouterr().err


def test_a_new_store_opened_by_two_at_once_opens_for_both(tmp_path):
    """A cluster's replicas open the one QA store together when they start. The second must not create the tables
    the first is creating: it read version 0 before the first committed, and crashed with "table runs already
    exists" (seen when the replicas started a few seconds faster). Here the first opener's migrations are held
    uncommitted while the second opens the file, then committed."""
    import threading

    from phi4_bridge.qa import store as qa_store

    path = tmp_path / "qa.sqlite3"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("PRAGMA journal_mode=WAL")
    first.execute("BEGIN IMMEDIATE")
    for version, script in enumerate(qa_store.MIGRATIONS):
        for statement in qa_store._statements(script):
            first.execute(statement)
        first.execute(f"PRAGMA user_version={version + 1}")
    opened: list[object] = []

    def second() -> None:
        try:
            opened.append(QAStore(path))
        except Exception as exc:  # noqa: BLE001 - the failure is the test's answer
            opened.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)  # the second opener reads the version (0: nothing committed) and waits for the write lock
    first.execute("COMMIT")
    thread.join(30)
    first.close()
    assert len(opened) == 1 and isinstance(opened[0], QAStore), opened
    assert opened[0].version == qa_store.SCHEMA_VERSION

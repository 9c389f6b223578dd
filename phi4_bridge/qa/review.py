"""Reading the QA store for review: runs (filtered), a run's cases a page at a time, any two runs compared.

Why a module of its own: the tab, the command line (``qa runs``, ``qa export``) and the benchmark read the same
queries, and the paging is done by SQLite (``LIMIT``/``OFFSET`` on an indexed primary key), so a 1,000-case run
costs one page's rows per look, not the whole run (``python -m benchmarks.qa_store`` measures it).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .store import QAStore

FILTERS = ("all", "failed", "unmarked", "bad", "changed")
PAGE_SIZE = 20

_ROW_SQL = """
SELECT c.case_id AS id, c.position, c.line, c.prompt, c.expect, c.invalid, r.status, r.passed, r.reply, r.ttft_s,
       r.upload_s, r.total_s, r.error_type, r.error, r.retryable, r.finished_at, m.mark, m.note, m.who AS mark_who,
       m.at AS mark_at, p.status AS prev_status, p.reply AS prev_reply
FROM cases c
LEFT JOIN results r ON r.run_id = c.run_id AND r.case_id = c.case_id
LEFT JOIN marks m ON m.id = (SELECT MAX(id) FROM marks WHERE run_id = c.run_id AND case_id = c.case_id)
LEFT JOIN results p ON p.run_id = ? AND p.case_id = c.case_id
WHERE c.run_id = ?
"""

_FILTER_SQL = {
    "all": "",
    "failed": " AND r.status IN ('fail', 'error')",
    "unmarked": " AND m.mark IS NULL AND r.status IS NOT NULL",
    "bad": " AND m.mark = 'bad'",
    "changed": " AND (p.case_id IS NULL OR p.reply IS NOT r.reply OR p.status IS NOT r.status)",
}


def run_label(run: dict[str, Any]) -> str:
    """"Run 7 · 2026-11-28 14:31 · cases.jsonl · cli" (what the tab's list and the command line show)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created_at"]))
    source = run.get("source") or "uploads"
    parent = f" · re-run of {run['parent_id']}" if run.get("parent_id") else ""
    return f"Run {run['id']} · {when} · {source} · {run.get('origin')}{parent}"


def status_of(run: dict[str, Any]) -> str:
    """A run's status; "running" only while the process that owns it lives (a killed CLI run is "interrupted")."""
    if run.get("status") != "running":
        return str(run.get("status"))
    pid = int(run.get("pid") or 0)
    if pid <= 0:
        return "interrupted"
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: never send it to ask whether a process lives
        return "running"
    try:
        os.kill(pid, 0)
    except PermissionError:  # it lives, as another user
        return "running"
    except OSError:
        return "interrupted"
    return "running"


def list_runs(store: QAStore, *, space: str | None = None, date: str | None = None, source: str | None = None,
              limit: int = 200) -> list[dict[str, Any]]:
    """Newest first, with their counts; ``date`` is ``YYYY-MM-DD`` (local time), ``source`` a part of the name."""
    sql = ("SELECT runs.*, (SELECT COUNT(*) FROM cases WHERE run_id = runs.id) AS n_cases, "
           "(SELECT COUNT(*) FROM results WHERE run_id = runs.id AND status = 'pass') AS n_pass, "
           "(SELECT COUNT(*) FROM results WHERE run_id = runs.id AND status IN ('fail', 'error')) AS n_failed "
           "FROM runs WHERE 1=1")
    params: list[Any] = []
    if space:
        sql += " AND space = ?"
        params.append(space)
    if date:
        sql += " AND date(created_at, 'unixepoch', 'localtime') = ?"
        params.append(date.strip())
    if source:
        sql += " AND source LIKE ? ESCAPE '\\'"
        params.append("%" + source.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    rows = store.query(sql + " ORDER BY id DESC LIMIT ?", [*params, int(limit)])
    return [{**dict(r), "label": run_label(dict(r)), "state": status_of(dict(r))} for r in rows]


def counts(store: QAStore, run_id: int) -> dict[str, int]:
    """``total``, ``pass``, ``fail``, ``error``, ``not_run`` (a case with no result yet counts as not run)."""
    out = {"total": 0, "pass": 0, "fail": 0, "error": 0, "not_run": 0}
    for row in store.query("SELECT r.status, COUNT(*) FROM cases c LEFT JOIN results r ON r.run_id = c.run_id AND "
                           "r.case_id = c.case_id WHERE c.run_id = ? GROUP BY r.status", (run_id,)):
        status = row[0] if row[0] in out else "not_run"
        out[status] += row[1]
        out["total"] += row[1]
    return out


def spaces(store: QAStore) -> list[str]:
    return [r[0] for r in store.query("SELECT DISTINCT space FROM runs WHERE space != '' ORDER BY space")]


def previous_run(store: QAStore, run_id: int) -> int | None:
    """What "changed since the previous run" compares with: the parent of a re-run, else the latest earlier run
    of the same case source."""
    run = store.run(run_id)
    if run is None:
        return None
    if run.get("parent_id"):
        return int(run["parent_id"])
    rows = store.query("SELECT id FROM runs WHERE source = ? AND id < ? ORDER BY id DESC LIMIT 1",
                       (run.get("source") or "", run_id))
    return int(rows[0]["id"]) if rows else None


def page(store: QAStore, run_id: int, *, filter: str = "all", offset: int = 0,
         limit: int | None = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
    """One page of a run's cases (case order) with result, current mark and files; and how many match in all."""
    where = _FILTER_SQL.get(filter, "")
    prev = previous_run(store, run_id) if filter == "changed" else None
    if filter == "changed" and prev is None:
        where = ""  # a first run: everything is new
    params = [prev if prev is not None else -1, run_id]
    total = store.query(f"SELECT COUNT(*) FROM ({_ROW_SQL}{where})", params)[0][0]
    sql = f"{_ROW_SQL}{where} ORDER BY c.position"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {max(0, int(offset))}"
    rows = [_row(dict(r)) for r in store.query(sql, params)]
    files = store.case_files(run_id, [r["id"] for r in rows])
    for row in rows:
        row["files"] = files.get(row["id"], [])
    return rows, int(total)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    row["expect"] = json.loads(row.get("expect") or "[]")
    if row.get("passed") is not None:
        row["passed"] = bool(row["passed"])
    if row.get("retryable") is not None:
        row["retryable"] = bool(row["retryable"])
    return row


def export_records(store: QAStore, run_id: int) -> list[dict[str, Any]]:
    """The run as result records in case order, in the shape of ``results.jsonl`` (plus the current mark)."""
    rows, _ = page(store, run_id, limit=None)
    out = []
    for row in rows:
        images = [f["name"] for f in row["files"] if f["role"] == "image"]
        audios = [f["name"] for f in row["files"] if f["role"] == "audio"]
        out.append({
            "id": row["id"], "line": row["line"], "image": _one(images), "audio": _one(audios),
            "prompt": row["prompt"], "expect": _one(row["expect"]), "status": row["status"] or "not_run",
            "passed": row["passed"], "reply": row["reply"] or "", "ttft_s": row["ttft_s"],
            "upload_s": row["upload_s"], "total_s": row["total_s"],
            "error": row["error"] if row["status"] else (row["invalid"] or "not run yet"),
            "error_type": row["error_type"], "retryable": row["retryable"], "mark": row["mark"], "note": row["note"],
            "marked_by": row["mark_who"],
        })
    return out


def _one(values: list[str]) -> str | list[str] | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def compare(store: QAStore, run_a: int, run_b: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Counts (``fixed``: not passing in A, passing in B; ``broke``: the reverse; ``changed``: same outcome, another
    reply; ``same``; ``only_a``/``only_b``) and one row per case id, B's order first."""
    a = {r["id"]: r for r in page(store, run_a, limit=None)[0]}
    b = {r["id"]: r for r in page(store, run_b, limit=None)[0]}
    counts = dict.fromkeys(("fixed", "broke", "changed", "same", "only_a", "only_b"), 0)
    rows = []
    for case_id in dict.fromkeys([*b, *a]):
        ra, rb = a.get(case_id), b.get(case_id)
        if ra is None or rb is None:
            kind = "only_b" if ra is None else "only_a"
        elif ra["status"] != "pass" and rb["status"] == "pass":
            kind = "fixed"
        elif ra["status"] == "pass" and rb["status"] != "pass":
            kind = "broke"
        elif ra["status"] != rb["status"] or (ra["reply"] or "") != (rb["reply"] or ""):
            kind = "changed"
        else:
            kind = "same"
        counts[kind] += 1
        rows.append({"id": case_id, "kind": kind, "a": ra, "b": rb})
    return counts, rows

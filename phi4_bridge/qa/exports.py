"""A run of the QA store as a file: ``jsonl`` (the ``results.jsonl`` shape plus marks), ``csv``, ``html``
(the self-contained report, thumbnails drawn from the stored bytes).

Exports are text made on request; the caller decides where they go (stdout for ``qa export``, the app's own
cleaned folder for the tab's downloads), so nothing outlives its use in a temporary folder.
"""

from __future__ import annotations

import csv
import io
import json

from .report import render_report, thumbnail_of_bytes
from .review import export_records, page, run_label
from .store import QAStore

FORMATS = ("jsonl", "html", "csv")
CSV_COLUMNS = ("id", "image", "audio", "prompt", "expect", "status", "passed", "reply", "ttft_s", "upload_s",
               "total_s", "error_type", "error", "mark", "note", "marked_by")


def thumbs_for(store: QAStore, run_id: int) -> dict[str, list[str | None]]:
    """Per case, a data URI per image (None when its bytes are not kept or are not a picture)."""
    out: dict[str, list[str | None]] = {}
    drawn: dict[str, str | None] = {}  # by content hash: a picture many cases share is drawn once
    rows, _ = page(store, run_id, limit=None)
    for row in rows:
        uris: list[str | None] = []
        for file in row["files"]:
            if file["role"] == "image":
                digest = file["hash"]
                if digest and digest not in drawn:
                    data = store.blob(digest)
                    drawn[digest] = thumbnail_of_bytes(data) if data else None
                uris.append(drawn.get(digest) if digest else None)
        out[row["id"]] = uris
    return out


def export_run(store: QAStore, run_id: int, fmt: str) -> str:
    """The run as text in ``fmt``; KeyError for an unknown run, ValueError for an unknown format."""
    run = store.run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id} in {store.path.name}")
    records = export_records(store, run_id)
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(record.get(k)) for k in CSV_COLUMNS})
        return buf.getvalue()
    if fmt == "html":
        meta = f"{run.get('space') or '?'} · {run.get('origin')} · {run.get('status')}"
        return render_report(records, {}, title=f"Phi-4 image prompt QA · {run_label(run)}", meta=meta,
                             thumbs=thumbs_for(store, run_id))
    raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula (OWASP's list)


def _cell(value: object) -> object:
    """A CSV cell. Text that a spreadsheet would read as a formula (``=HYPERLINK(...)``: prompts and replies are
    anyone's text) gets a leading ``'``, which spreadsheets show as text; numbers stay numbers."""
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value

"""How quickly the QA store pages a big run: ``python -m benchmarks.qa_store [--cases 1000] [--report PATH]``.

Why a benchmark and not a test: a duration depends on the machine (this one is 2 shared cores), so tests never
assert one; this prints the figures and writes them to ``benchmarks/REPORT-qa.md`` for people to read.

It builds a real store in a temporary folder (removed at the end): a run of N cases (50 distinct images shared
by them, replies of about 400 characters), its re-run (one case in ten answered differently, a fifth of its
cases marked), then times what the QA tab does: one page of 20 cases under each filter, at the start and at the
end of the run; the gallery's HTML for a page (thumbnails drawn from the stored bytes, first and cached); the
comparison of the two runs; the exports; recording one result (one commit each).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from mirror.qa.gallery import gallery_html
from phi4_bridge.qa.cases import Case
from phi4_bridge.qa.exports import export_run
from phi4_bridge.qa.review import FILTERS, PAGE_SIZE, compare, counts, list_runs, page, run_label, status_of
from phi4_bridge.qa.store import QAStore

REPORT = Path(__file__).resolve().parent / "REPORT-qa.md"


def timed(fn: Callable[[], Any], repeat: int = 7) -> tuple[float, Any]:
    """Median milliseconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def build(store: QAStore, folder: Path, n: int) -> tuple[int, int, float]:
    """Two runs of ``n`` cases; the milliseconds one ``record`` (one result, one commit) took, median."""
    images = []
    for i in range(50):
        path = folder / f"img{i:02d}.png"
        Image.new("RGB", (640, 480), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)).save(path)
        images.append(path)
    cases = [Case(id=f"case-{i:04d}", line=i + 1, prompt=f"Describe picture {i}", images=[images[i % 50].name],
                  expect=["picture"], base_dir=str(folder)) for i in range(n)]
    first = store.start_run(origin="cli", source="big.jsonl", space="microsoft/phi-4-multimodal")
    store.put_cases(first, cases)
    per_record = []
    for i, case in enumerate(cases):
        start = time.perf_counter()
        store.record(first, {"id": case.id, "status": "pass" if i % 7 else "fail", "reply": f"Reply {i}: " + "x" * 400,
                             "ttft_s": 0.5, "total_s": 1.5, "finished_at": time.time()})
        per_record.append((time.perf_counter() - start) * 1000)
    second = store.start_run(origin="tab", source="big.jsonl", space="microsoft/phi-4-multimodal", parent_id=first)
    store.copy_cases(first, second)
    for i, case in enumerate(cases):
        reply = f"Reply {i}: " + ("y" if i % 10 == 0 else "x") * 400
        store.record(second, {"id": case.id, "status": "pass" if i % 5 else "fail", "reply": reply})
    for i in range(0, n, 5):
        store.mark(second, cases[i].id, "bad" if i % 10 else "good", f"note {i}", "bench")
    return first, second, statistics.median(per_record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.qa_store", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--report", type=Path, default=REPORT, help="where to write the Markdown report")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        folder = Path(tmp)
        store = QAStore(folder / "qa.sqlite3")
        began = time.perf_counter()
        first, second, record_ms = build(store, folder, args.cases)
        rows.append((f"build: {args.cases} cases x 2 runs, {args.cases // 5} marks (s, once)",
                     time.perf_counter() - began))
        rows.append(("record one result (one commit)", record_ms))
        last_offset = max(0, args.cases - PAGE_SIZE)
        for filter in FILTERS:
            ms, (_, total) = timed(lambda f=filter: page(store, second, filter=f, limit=PAGE_SIZE))
            rows.append((f"page 1 of 20, filter {filter} ({total} match)", ms))
        ms, _ = timed(lambda: page(store, second, offset=last_offset, limit=PAGE_SIZE))
        rows.append((f"last page of 20 (offset {last_offset}), filter all", ms))
        ms, _ = timed(lambda: counts(store, second))
        rows.append(("counts of a run", ms))
        run = store.run(second)
        run = {**run, "label": run_label(run), "state": status_of(run)}

        def gallery(offset: int) -> str:
            found, total = page(store, second, offset=offset, limit=PAGE_SIZE)
            return gallery_html(run, found, total, 1, 50, "all", counts(store, second), store.blob)

        ms_cold, _ = timed(lambda: gallery(PAGE_SIZE * 10), repeat=1)
        rows.append(("gallery HTML of a page, thumbnails drawn (first time)", ms_cold))
        ms, html = timed(lambda: gallery(PAGE_SIZE * 10))
        rows.append((f"gallery HTML of a page, thumbnails cached ({len(html) // 1024} KiB)", ms))
        ms, (tally, _) = timed(lambda: compare(store, first, second), repeat=3)
        rows.append((f"compare two runs ({', '.join(f'{k} {v}' for k, v in tally.items() if v)})", ms))
        for fmt in ("jsonl", "csv", "html"):
            ms, text = timed(lambda f=fmt: export_run(store, second, f), repeat=3)
            rows.append((f"export {fmt} ({len(text) // 1024} KiB)", ms))
        ms, _ = timed(lambda: list_runs(store))
        rows.append(("list the runs", ms))
        size = sum(p.stat().st_size for p in folder.glob("qa.sqlite3*"))
        store.close()
    out = io.StringIO()
    out.write("# QA store: paging a big run\n\n")
    out.write(f"Command: `python -m benchmarks.qa_store --cases {args.cases}` (run {time.strftime('%Y-%m-%d %H:%M')}"
              f"; store {size / 1e6:.1f} MB with WAL). Milliseconds, median of 7 calls (3 for compare and exports; "
              "1 for the first gallery), on this shared 2-core machine with other work running.\n\n")
    out.write("| what | ms |\n|---|---|\n")
    for what, value in rows:
        out.write(f"| {what} | {value:.2f} |\n" if "(s, once)" not in what else f"| {what} | {value:.1f} s |\n")
    out.write("\nA page is one SQL query (`LIMIT 20 OFFSET n` in case order, each case's current mark through the "
              "marks index) plus a count of the matches; only that page's file bytes are read. `OFFSET` walks the "
              "rows it skips, so a late page costs more than the first (see the table), and `changed` joins the "
              "previous run. Drawing the thumbnails dominates the first look at a page; they are cached (by the "
              "file's content hash, per app process) afterwards.\n")
    text = out.getvalue()
    print(text)
    args.report.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m phi4_bridge qa CASES.jsonl --out DIR``: run a case file into the QA store (``--db``), and write
results.jsonl and report.html as exports. ``qa runs`` lists the store's runs, ``qa export RUN --format F`` prints one.

Every result is committed to the store as its case finishes, so a killed run loses only the turns in flight;
running again into the same DIR continues the same run in the store (``--rerun``: a new run, linked to it).

Exit codes: 0 every case ran and passed; 1 some case failed or errored; 2 the case file is unusable;
3 stopped because the Space is unavailable or refused the credentials; 4 stopped on the ZeroGPU quota.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..bridge import Phi4Bridge
from ..flags import add_arguments, config_from
from .cases import Case, CaseFileError, load_cases
from .exports import FORMATS, export_run
from .report import write_report
from .review import list_runs
from .runner import REPORT_NAME, ResultsFile, RunStopped, is_done, read_results, run_cases, summarise
from .store import QAStore, default_path


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "qa", help="run a JSONL file of image prompts into the QA store; write results.jsonl and report.html",
        description="Run every case of a JSONL case file through the Space (bounded concurrency), recording "
                    "each result in the QA store (--db) and DIR/results.jsonl as it finishes and writing "
                    "DIR/report.html at the end. Running again into the same DIR resumes the same run: finished "
                    "cases are not sent again. 'qa runs' lists the store's runs; 'qa export RUN --format "
                    "jsonl|html|csv' prints one (a case file named runs or export: write ./runs).")
    p.add_argument("cases", metavar="CASES.jsonl", help='one case a line: {"id", "image", "audio", "prompt", '
                                                         '"expect"}; paths relative to the case file')
    p.add_argument("run_id", nargs="?", metavar="RUN", help="qa export: the run's number (see qa runs)")
    p.add_argument("--out", metavar="DIR", help="directory for results.jsonl and report.html (qa export: a file)")
    p.add_argument("--db", metavar="PATH", help=f"the QA store (env PHI4_QA_DB, default {default_path()})")
    p.add_argument("--format", choices=FORMATS, default="jsonl", help="qa export: the format (default jsonl)")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="qa runs: only runs of that day")
    p.add_argument("--source", metavar="NAME", help="qa runs: only runs whose case file name contains this")
    p.add_argument("--concurrency", type=_positive, default=2, metavar="N",
                   help="turns in flight at once (default 2)")
    p.add_argument("--rerun", action="store_true", help="run every case again, even those already done in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_arguments(p)
    p.set_defaults(run=qa)
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _Progress:
    """tqdm on stderr when available, else one carriage-return line."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.count, self.bar = total, 0, None
        self.enabled = enabled and total > 0
        self.failed = 0
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, file=sys.stderr, unit="case", desc="qa", dynamic_ncols=True)

    def update(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.failed += record.get("status") != "pass"
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"not passed {self.failed}", refresh=False)
            self.bar.update(1)
        else:
            print(f"\rqa {self.count}/{self.total} (not passed {self.failed})", end="", file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(("\n" if self.enabled and self.count else "") + text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


def runs(args: argparse.Namespace, store: QAStore) -> int:
    """``qa runs``: one line a run, newest first."""
    found = list_runs(store, space=args.space, date=args.date, source=args.source)
    for run in found:
        print(f"{run['label']} · {run['space'] or '?'} · {run['state']} · {run['n_cases']} cases, "
              f"{run['n_pass']} passed, {run['n_failed']} failed")
    if not found:
        print(f"No runs in {store.path}.", file=sys.stderr)
    return 0


def export(args: argparse.Namespace, store: QAStore) -> int:
    """``qa export RUN``: to stdout, or to ``--out FILE``."""
    try:
        text = export_run(store, int(args.run_id or ""), args.format)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc} (qa runs lists the runs)", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


async def qa(args: argparse.Namespace) -> int:
    store = QAStore(args.db) if args.db else QAStore()
    try:
        if _is_command(args.cases):
            return (runs if args.cases == "runs" else export)(args, store)
        if not args.out:
            print("error: the qa command needs --out DIR", file=sys.stderr)
            return 2
        return await run_file(args, store)
    finally:
        store.close()


def _is_command(name: str) -> bool:
    """``runs`` and ``export`` are commands unless a case file of that name is there (then write ``./runs``)."""
    return name in ("runs", "export") and not os.path.exists(name)


def resume_key(out: Path) -> str:
    """Which run a DIR belongs to, without keeping the path itself in the store (visitors of the tab see runs)."""
    return hashlib.blake2b(str(out.resolve()).encode(), digest_size=12).hexdigest()


async def run_file(args: argparse.Namespace, store: QAStore) -> int:
    try:
        cases = load_cases(args.cases)
    except CaseFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    fingerprints = {case.id: case.fingerprint() for case in cases}
    key = resume_key(out)
    previous = store.find_resumable(key)
    earlier = read_results(out / "results.jsonl")
    if previous is not None:
        earlier.update(store.latest_results(previous))
    todo: list[Case] = [c for c in cases if args.rerun or not is_done(earlier.get(c.id), c, fingerprints[c.id])]
    skipped = len(cases) - len(todo)
    if skipped:
        print(f"{skipped} of {len(cases)} cases already done in {out} (skipped; --rerun runs them again).",
              file=sys.stderr)

    results = ResultsFile(out)
    stopped: list[RunStopped] = []
    config, stage = config_from(args), ""
    if todo:
        from ..spaces import resolve

        done = await resolve(config)  # --space auto, the Space's stage in words (SpaceUnavailable: exit 3)
        if done.note:
            print(done.note, file=sys.stderr, flush=True)
        config, stage = done.config, (done.state.stage or "") if done.state else ""
    if previous is not None and not args.rerun:
        run_id = previous
        store.resume_run(run_id)
    else:
        run_id = store.start_run(
            origin="cli", source=args.cases, space=config.space, space_url=config.space_url, stage=stage,
            settings={"concurrency": args.concurrency, "timeouts": asdict(config.timeouts)}, who=_user(),
            parent_id=previous, resume_key=key)
    store.put_cases(run_id, cases)
    for case_id, record in earlier.items():  # done before (results.jsonl of an older version): keep them
        if case_id in fingerprints and case_id not in {c.id for c in todo} and record.get("status"):
            store.record(run_id, record)
    progress = _Progress(len(todo), enabled=not args.no_progress)
    end = "interrupted"
    try:
        if todo:
            async with Phi4Bridge(config) as bridge:
                async for record in run_cases(bridge, todo, concurrency=args.concurrency, stopped=stopped):
                    record["fingerprint"] = fingerprints.get(record["id"])
                    store.record(run_id, record)
                    results.append(record)
                    progress.update(record)
                    if record["status"] == "error":  # (a case not run has the status "not_run")
                        progress.write(f"case {record['id']}: {record['error']}")
        end = "stopped" if stopped else "finished"
    finally:
        store.finish_run(run_id, end)
        progress.close()
        results.close()

    latest = results.compact([c.id for c in cases])
    records = [latest.get(c.id) or {**c.describe(), "status": "not_run", "error": "not run yet"} for c in cases]
    note = ""
    if stopped:
        note = f"The run stopped early: {stopped[0].message} {stopped[0].advice()}"
    write_report(out / REPORT_NAME, records, {c.id: c.image_paths for c in cases},
                 meta=f"{args.cases} · {config.space} at {config.space_url}", note=note)

    counts = summarise(records)
    print(f"{counts['total']} cases: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, "
          f"{counts['not_run']} not run ({skipped} skipped as already done). "
          f"Results: {out / 'results.jsonl'}  Report: {out / REPORT_NAME}  Run {run_id} in {store.path}",
          file=sys.stderr)
    if stopped:
        stop = stopped[0]
        print(f"stopped: {stop.message}\n{stop.advice()}", file=sys.stderr)
        return 4 if stop.quota_spent else 3
    return 0 if counts["pass"] == counts["total"] else 1


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None

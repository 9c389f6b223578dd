"""``python -m phi4_bridge qa CASES.jsonl --out DIR``: run a case file, write results.jsonl and report.html.

Exit codes: 0 every case ran and passed; 1 some case failed or errored; 2 the case file is unusable;
3 stopped because the Space is unavailable or refused the credentials; 4 stopped on the ZeroGPU quota.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..bridge import Phi4Bridge
from ..config import BridgeConfig, add_arguments
from .cases import Case, CaseFileError, load_cases
from .report import write_report
from .runner import REPORT_NAME, ResultsFile, RunStopped, is_done, read_results, run_cases, summarise


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "qa", help="run a JSONL file of image prompts; write results.jsonl and a self-contained report.html",
        description="Run every case of a JSONL case file through the Space (bounded concurrency), appending "
                    "each result to DIR/results.jsonl as it finishes and writing DIR/report.html at the end. "
                    "Running again into the same DIR resumes: finished cases are not sent again.")
    p.add_argument("cases", metavar="CASES.jsonl", help='one case a line: {"id", "image", "audio", "prompt", '
                                                         '"expect"}; paths relative to the case file')
    p.add_argument("--out", required=True, metavar="DIR", help="directory for results.jsonl and report.html")
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


async def qa(args: argparse.Namespace) -> int:
    try:
        cases = load_cases(args.cases)
    except CaseFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    fingerprints = {case.id: case.fingerprint() for case in cases}
    earlier = read_results(out / "results.jsonl")
    todo: list[Case] = [c for c in cases if args.rerun or not is_done(earlier.get(c.id), c, fingerprints[c.id])]
    skipped = len(cases) - len(todo)
    if skipped:
        print(f"{skipped} of {len(cases)} cases already done in {out} (skipped; --rerun runs them again).",
              file=sys.stderr)

    results = ResultsFile(out)
    stopped: list[RunStopped] = []
    config = BridgeConfig.from_env(args)
    if todo:
        from ..__main__ import resolved_config

        config = await resolved_config(args)  # --space auto, the Space's stage in words (SpaceUnavailable: exit 3)
    progress = _Progress(len(todo), enabled=not args.no_progress)
    try:
        if todo:
            async with Phi4Bridge(config) as bridge:
                async for record in run_cases(bridge, todo, concurrency=args.concurrency, stopped=stopped):
                    record["fingerprint"] = fingerprints.get(record["id"])
                    results.append(record)
                    progress.update(record)
                    if record["status"] == "error" and record["error_type"] != "NotRun":
                        progress.write(f"case {record['id']}: {record['error']}")
    finally:
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
          f"Results: {out / 'results.jsonl'}  Report: {out / REPORT_NAME}", file=sys.stderr)
    if stopped:
        stop = stopped[0]
        print(f"stopped: {stop.message}\n{stop.advice()}", file=sys.stderr)
        return 4 if stop.error_type == "QuotaExceeded" else 3
    return 0 if counts["pass"] == counts["total"] else 1

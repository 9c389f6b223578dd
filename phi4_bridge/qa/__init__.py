"""Manual QA of image prompts: JSONL case files, a bounded-concurrency runner with resume, a store, reports.

``cases`` loads and checks case files, ``runner`` runs them through one ``Phi4Bridge`` and keeps the
append-only results file, ``store`` keeps every run, case, file, result and mark in SQLite (shared by the
command line and the app's QA tab), ``review`` reads it back (filters, pages, comparisons), ``exports`` and
``report`` render a run, ``cli`` is ``python -m phi4_bridge qa``. Nothing here imports gradio.
"""

from .cases import Case, CaseFileError, load_cases, parse_lines
from .report import render_report, write_report
from .runner import ResultsFile, RunStopped, is_done, read_results, run_case, run_cases, summarise
from .store import QAStore, default_path

__all__ = [
    "Case", "CaseFileError", "QAStore", "ResultsFile", "RunStopped", "default_path", "is_done", "load_cases",
    "parse_lines", "read_results", "render_report", "run_case", "run_cases", "summarise", "write_report",
]

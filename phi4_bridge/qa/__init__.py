"""Manual QA of image prompts: JSONL case files, a bounded-concurrency runner with resume, an HTML report.

``cases`` loads and checks case files, ``runner`` runs them through one ``Phi4Bridge`` and keeps the
append-only results file, ``report`` renders the self-contained page, ``cli`` is ``python -m phi4_bridge qa``.
"""

from .cases import Case, CaseFileError, load_cases, parse_lines
from .report import render_report, write_report
from .runner import ResultsFile, RunStopped, is_done, read_results, run_case, run_cases, summarise

__all__ = [
    "Case", "CaseFileError", "ResultsFile", "RunStopped", "is_done", "load_cases", "parse_lines", "read_results",
    "render_report", "run_case", "run_cases", "summarise", "write_report",
]

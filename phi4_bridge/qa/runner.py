"""Run QA cases through one bridge with bounded concurrency; keep results in an append-only JSONL file.

A result record (one JSON object a line in ``results.jsonl``)::

    id, line, image, audio, prompt, expect      the case as written in the case file
    status       "pass" | "fail" (a reply that misses ``expect``) | "error" | "not_run"
    passed       true/false when the case has ``expect``, else null
    reply        the reply (the part received so far when the turn failed midway)
    ttft_s, upload_s, total_s                   seconds: first text, files uploaded, whole turn
    error, error_type                           a person-readable message and the bridge's error class
    retryable    whether running the case again could change an error
    fingerprint  hash of the case definition and its files' bytes (resume notices edits)
    finished_at  unix seconds

Resume: a case counts as done when its latest record is a pass or fail (it got a reply), or an error that
cannot change by retrying (a refused file, an invalid case line), and the case and its files are unchanged.
Quota, busy GPUs, an unavailable Space, network and Space-side errors, and "not_run" are run again.

A quota error (or a Space that is gone or refuses our credentials) stops the run: nothing new is launched,
the cases not started are recorded as "not_run", and ``RunStopped`` tells the caller why.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bridge import Phi4Bridge
from ..errors import (
    AuthError,
    InputRejected,
    Phi4Error,
    QuotaExceeded,
    SpaceUnavailable,
    TokenExpired,
    UnavailableState,
)
from ..events import Done, TextDelta
from .cases import Case

RESULTS_NAME = "results.jsonl"
REPORT_NAME = "report.html"

# Errors after which every further case would fail the same way: stop launching.
_SPACE_GONE = frozenset({UnavailableState.SLEEPING, UnavailableState.PAUSED, UnavailableState.NOT_FOUND,
                         UnavailableState.PRIVATE, UnavailableState.UNREACHABLE, UnavailableState.GPU_DURATION})


def stops_run(error: BaseException) -> bool:
    if isinstance(error, QuotaExceeded):
        return True
    if isinstance(error, AuthError) and not isinstance(error, TokenExpired):
        return True
    return isinstance(error, SpaceUnavailable) and error.state in _SPACE_GONE


def retryable(error: BaseException) -> bool:
    return not isinstance(error, InputRejected)


@dataclass
class RunStopped:
    """Why a run stopped early: the error that stopped it (``error``; None for the app's budget), as text a person
    can act on."""

    error_type: str
    message: str
    retry_after: float | None = None
    error: Phi4Error | None = None

    @property
    def quota_spent(self) -> bool:
        return isinstance(self.error, QuotaExceeded)

    def advice(self) -> str:
        if self.quota_spent:
            if self.retry_after:
                wait = f"in about {max(1, round(self.retry_after / 60))} minute(s)"
            else:
                wait = "after the quota refills"
            return f"Run the same command again {wait} to resume; finished cases are not sent again."
        return "Fix the cause, then run the same command again to resume; finished cases are not sent again."


def _now() -> float:
    return round(time.time(), 3)


def error_record(case: Case, message: str, error_type: str, *, can_retry: bool, status: str = "error",
                 reply: str = "", timings: dict[str, float | None] | None = None) -> dict[str, Any]:
    timings = timings or {}
    return {
        **case.describe(), "status": status, "passed": False if case.expect else None, "reply": reply,
        "ttft_s": timings.get("ttft_s"), "upload_s": timings.get("upload_s"), "total_s": timings.get("total_s"),
        "error": message, "error_type": error_type, "retryable": can_retry, "finished_at": _now(),
    }


def not_run_record(case: Case, why: str) -> dict[str, Any]:
    return error_record(case, f"not run: {why}", "NotRun", can_retry=True, status="not_run")


def judge(case: Case, reply: str) -> tuple[str, bool | None]:
    if not case.expect:
        return "pass", None
    passed = all(piece in reply for piece in case.expect)
    return ("pass" if passed else "fail"), passed


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def run_case(bridge: Phi4Bridge, case: Case, *, ip_token: str | None = None) -> dict[str, Any]:
    """One case, one fresh conversation; never raises for a case's own failure (returns an error record)."""
    record, _ = await _run_case(bridge, case, ip_token=ip_token)
    return record


async def _run_case(bridge: Phi4Bridge, case: Case, *, ip_token: str | None = None
                    ) -> tuple[dict[str, Any], Phi4Error | None]:
    """``run_case``'s record, and the bridge's error when the case failed with one."""
    if case.invalid:
        return error_record(case, case.invalid, "InvalidCase", can_retry=False), None
    started = time.perf_counter()
    first_text: float | None = None
    done: Done | None = None
    job = None
    try:
        async with bridge.submit(case.prompt, case.files, ip_token=ip_token) as job:
            async for event in job:
                if isinstance(event, TextDelta) and first_text is None:
                    first_text = time.perf_counter() - started
                elif isinstance(event, Done):
                    done = event
    except Phi4Error as exc:
        timings = {"ttft_s": _r(first_text), "total_s": _r(time.perf_counter() - started)}
        record = error_record(case, str(exc), type(exc).__name__, can_retry=retryable(exc),
                              reply=job.reply if job is not None else "", timings=timings)
        if isinstance(exc, QuotaExceeded):
            record["retry_after"] = exc.retry_after
        record["stops_run"] = stops_run(exc)
        return record, exc
    except Exception as exc:  # a bug or an unexpected failure: record it, keep the run going
        return error_record(case, f"unexpected {type(exc).__name__}: {exc}", type(exc).__name__, can_retry=True,
                            timings={"total_s": _r(time.perf_counter() - started)}), None
    assert done is not None
    status, passed = judge(case, done.text)
    t = done.timings
    return {
        **case.describe(), "status": status, "passed": passed, "reply": done.text,
        "ttft_s": _r(t.get("first_text_s", first_text)), "upload_s": _r(t.get("upload_s")),
        "total_s": _r(t.get("total_s", time.perf_counter() - started)),
        "error": None if status == "pass" else f"the reply does not contain {_missing(case, done.text)}",
        "error_type": None if status == "pass" else "ExpectationFailed", "retryable": False, "finished_at": _now(),
    }, None


def _missing(case: Case, reply: str) -> str:
    return ", ".join(repr(piece) for piece in case.expect if piece not in reply)


async def run_cases(bridge: Phi4Bridge, cases: Sequence[Case], *, concurrency: int = 2,
                    ip_token: str | None = None, stopped: list[RunStopped] | None = None,
                    on_start: Any = None, admit: Callable[[], str | None] | None = None,
                    ) -> AsyncGenerator[dict[str, Any], None]:
    """Yield one record per case, in the order they finish, at most ``concurrency`` turns at a time.

    When a case meets an error that stops the run (quota, Space gone, credentials refused), no further case
    is started; cases not started are yielded as "not_run" and the reason is appended to ``stopped``. ``admit``
    is asked before each case starts (the app's per-visitor budget): a sentence back stops the run the same way.
    Closing the generator early cancels the turns in flight (on the Space too).
    """
    stopped = stopped if stopped is not None else []
    sem = asyncio.Semaphore(max(1, int(concurrency)))
    results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def one(case: Case) -> None:
        try:
            record, error = await _run_case(bridge, case, ip_token=ip_token)
            if record.pop("stops_run", False) and not stopped:
                stopped.append(RunStopped(record["error_type"], record["error"], record.get("retry_after"), error))
            await results.put(record)
        finally:
            sem.release()

    async def launch() -> None:
        for index, case in enumerate(cases):
            await sem.acquire()
            if not stopped and admit is not None and (refusal := admit()) is not None:
                stopped.append(RunStopped("OverBudget", refusal))
            if stopped:
                sem.release()
                why = f"the run stopped early ({stopped[0].error_type})"
                for rest in cases[index:]:
                    await results.put(not_run_record(rest, why))
                return
            if on_start is not None:
                on_start(case)
            task = asyncio.create_task(one(case), name=f"qa-case-{case.id}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    launcher = asyncio.create_task(launch(), name="qa-launcher")
    try:
        for _ in range(len(cases)):
            yield await results.get()
    finally:
        launcher.cancel()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(launcher, *tasks, return_exceptions=True)


# ---- the results file ---------------------------------------------------------------------------------------

def read_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The latest record per id; a torn last line (an interrupted write) or other junk lines are skipped."""
    latest: dict[str, dict[str, Any]] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    latest[record["id"]] = record
    except FileNotFoundError:
        pass
    return latest


def is_done(record: dict[str, Any] | None, case: Case, fingerprint: str | None = None) -> bool:
    if not record or record.get("status") not in ("pass", "fail", "error"):
        return False
    if record.get("status") == "error" and record.get("retryable", True):
        return False
    return fingerprint is None or record.get("fingerprint") == fingerprint


class ResultsFile:
    """``DIR/results.jsonl``: each record is appended and flushed as soon as it exists."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS_NAME
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if self._fh.tell() and not self._ends_with_newline():
            self._fh.write("\n")  # a torn last line (interrupted write) must not swallow the next record

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def compact(self, order: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Rewrite the file with one line per id (its latest), case-file order first, atomically."""
        latest = read_results(self.path)
        ids = list(dict.fromkeys([i for i in order if i in latest] + list(latest)))
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for case_id in ids:
                fh.write(json.dumps(latest[case_id], ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)
        return latest


def summarise(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"total": 0, "pass": 0, "fail": 0, "error": 0, "not_run": 0}
    for record in records:
        counts["total"] += 1
        status = record.get("status") or "not_run"
        if status in ("queued", "running"):  # the app's rows for cases still in flight
            status = "not_run"
        counts[status if status in counts else "error"] += 1
    return counts

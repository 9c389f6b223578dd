"""The QA tab's handlers: runs go into the QA store as they finish; the tab reads everything back from it.

Why the store and not the visitor's ``gr.State``: a QA person's marks are hours of work and must survive a
restart, and a run of ``python -m phi4_bridge qa`` must show up here too. The QA tab is a team tool: every visitor
(a shared link's login too) sees every run; with ``--auth`` a mark carries the login name.

Stop: each session's running run is in ``QAService.active``; ``/qa_stop`` (the page's Stop button calls the same)
sets its stop event, the run's loop closes the runner, which cancels the turns in flight on the Space, and the
cases that did not finish are recorded as "not run". No reliance on gradio's front-end ``cancels=``, which an API
caller never gets.

Files: a tab run keeps the bytes of what the visitor uploaded (and nothing else: a path outside gradio's upload
folder is never read). A re-run writes the store's bytes to a folder of the app's own work folder for the turns,
and removes it when the run ends.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi4_bridge.qa.cases import Case
from phi4_bridge.qa.review import counts, page, run_label, status_of
from phi4_bridge.qa.runner import RunStopped, not_run_record, run_cases
from phi4_bridge.qa.store import QAStore

from ..door.cleanup import WorkDir
from ..visitors.budget import Budget, OverBudget
from ..visitors.identity import Visitor
from ..visitors.usage import UsageLog
from .gallery import gallery_html

STOP_WAIT_S = 20.0  # how long a Stop waits for the run's turns to be cancelled on the Space
MAX_NOTE = 2000
MB = 1024 * 1024
USAGE_OUTCOME = {"pass": "ok", "fail": "ok", "error": "error"}  # a "not run" case was no turn: not in the usage log


class RunRefused(Exception):
    """A tab run refused before anything of it was stored: the budget or the store's size bound said no."""


@dataclass(frozen=True)
class StoreBounds:
    """The QA store's bounds in the app (``--qa-max-mb``, ``--qa-keep-days``); docs/security.md."""

    max_bytes: int | None = None
    keep_s: float | None = None


@dataclass
class Active:
    """A run this app process is running for one session."""

    run_id: int
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def request_stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)


def session_of(visitor: Visitor) -> str:
    """The key of the visitor's running run: its page session (``api`` for a caller without one)."""
    return visitor.session_hash or "api"


def uploaded_reader(roots: list[Path]) -> Callable[[str], bytes | None]:
    """Reads a file only when it lies inside one of ``roots`` (gradio's upload folder, a re-run's own folder)."""
    resolved = [r.resolve() for r in roots]

    def read(path: str) -> bytes | None:
        try:
            real = Path(path).resolve()
            if not any(real.is_relative_to(root) for root in resolved):
                return None
            return real.read_bytes()
        except (OSError, ValueError):
            return None

    return read


def upload_root() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def safe_name(name: str) -> str:
    """A file name for a re-run's copy: the name's last part, plain characters, its extension kept (the bridge
    checks that the extension matches the contents)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name)[-100:].lstrip(".") or "file"


def to_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


class QAService:
    def __init__(self, store: QAStore, holder: Any, turns_at_once: int, budget: Budget,
                 usage: UsageLog | None = None, bounds: StoreBounds | None = None,
                 work: WorkDir | None = None) -> None:
        self.store, self.holder, self.turns_at_once, self.budget = store, holder, turns_at_once, budget
        self.work = work  # the app's work folder (its cases' files go under ``qa``); None: a temporary folder
        self.usage = usage  # each case's turn goes into the host's Usage log, as a chat turn does
        self.bounds = bounds or StoreBounds()
        self.active: dict[str, Active] = {}
        self.last: dict[str, int] = {}

    def admission(self, cases: list[Case], visitor: Visitor, read: Callable[[str], bytes | None]) -> str | None:
        """Why a tab run cannot start, asked before anything of it is stored (issue 27: a login with no turns
        left stored 334 MB in 1.6 s): every case that reaches the Space is a turn of the visitor's budget, and the
        run's new files must fit the store's bound. None: it may start."""
        turns = sum(1 for case in cases if not case.invalid)
        verdict = self.budget.check(visitor.client)
        if isinstance(verdict, OverBudget):
            return verdict.sentence()
        if verdict.left is not None and turns > verdict.left:
            return (f"That run has {turns} cases and you have {verdict.left} turn{'s' * (verdict.left != 1)} left "
                    "on this app for now; run fewer cases, or wait.")
        if self.bounds.max_bytes is not None:
            paths = [p for case in cases for name in case.images + case.audios if (p := case.locate(name))]
            stored, new = self.store.stored_bytes(), self.store.new_bytes(paths, read)
            if new and stored + new > self.bounds.max_bytes:
                return (f"The QA store is full: it keeps {stored / MB:.1f} MB of files and this run's would add "
                        f"{new / MB:.1f} MB, past its bound of {self.bounds.max_bytes / MB:.0f} MB (--qa-max-mb). "
                        "Runs older than --qa-keep-days are deleted; ask the host to raise the bound.")
        return None

    def record_case(self, run_id: int, visitor: Visitor, record: dict[str, Any]) -> None:
        """A finished case into the run and into the Usage log: two SQLite writes, which the run's handler makes
        off the event loop (as a chat turn's usage row), since another process writing a file may hold them."""
        self.store.record(run_id, record)
        self.record_usage(visitor, record)

    def record_usage(self, visitor: Visitor, record: dict[str, Any]) -> None:
        """One case's turn in the Usage log (``answer_s``: from its first word to its last, as near as a case's
        timings say)."""
        outcome = USAGE_OUTCOME.get(str(record.get("status")))
        if self.usage is None or outcome is None:
            return
        total, first = record.get("total_s"), record.get("ttft_s")
        answer = max(0.0, total - first) if total is not None and first is not None else None
        self.usage.record(visitor.client, "qa", outcome, time.time() - (total or 0.0), answer_s=answer,
                          total_s=total)

    def budget_refusal(self, visitor: Visitor) -> str | None:
        """A QA case is a turn like any other: it counts against the visitor's budget; the sentence saying when
        they can run again once they are over it, else None."""
        verdict = self.budget.spend(visitor.client)
        return verdict.sentence() if isinstance(verdict, OverBudget) else None

    # ---- reading ------------------------------------------------------------------------------------------

    def run_info(self, run_id: int | None) -> dict[str, Any] | None:
        run = self.store.run(run_id) if run_id is not None else None
        return None if run is None else {**run, "label": run_label(run), "state": status_of(run)}

    def gallery(self, run_id: int | None, filter: str = "all", page_no: Any = 1, size: int = 20) -> tuple[str, int]:
        """The gallery's HTML for one page, and the page number actually shown (clamped)."""
        run = self.run_info(run_id)
        if run is None:
            return gallery_html(None, [], 0, 1, 1, filter, {}, self.store.blob), 1
        _, total = page(self.store, run["id"], filter=filter, limit=0)
        pages = max(1, -(-total // size))
        number = min(max(1, to_int(page_no) or 1), pages)
        rows, total = page(self.store, run["id"], filter=filter, offset=(number - 1) * size, limit=size)
        return gallery_html(run, rows, total, number, pages, filter, counts(self.store, run["id"]),
                            self.store.blob), number

    def summary(self, run_id: int) -> str:
        c = counts(self.store, run_id)
        return f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, {c['not_run']} not run"

    # ---- running ------------------------------------------------------------------------------------------

    def new_run(self, cases: list[Case], source: str, concurrency: int, visitor: Visitor,
                parent_id: int | None = None, read: Callable[[str], bytes | None] | None = None) -> int:
        read = read or uploaded_reader([upload_root()])
        if parent_id is None:
            if self.bounds.keep_s is not None:
                self.store.prune(time.time() - self.bounds.keep_s)
            why = self.admission(cases, visitor, read)
            if why is not None:
                raise RunRefused(why)
        config = self.holder.config
        run_id = self.store.start_run(origin="tab", source=source, space=config.space, space_url=config.space_url,
                                      stage=getattr(self.holder, "label", ""), settings={"concurrency": concurrency},
                                      who=visitor.login, parent_id=parent_id)
        if parent_id is None:
            self.store.put_cases(run_id, cases, read=read)
        return run_id

    def materialize(self, run_id: int, case_ids: set[str]) -> tuple[list[Case], Path]:
        """The run's cases ``case_ids`` with their files written from the store into a folder of the app's own
        (removed by the caller when the run ends)."""
        work = self.work
        folder = work.new_folder("qa") if work else Path(tempfile.mkdtemp(prefix="phi4-qa-"))
        rows, _ = page(self.store, run_id, limit=None)
        cases = []
        for row in rows:
            if row["id"] not in case_ids:
                continue
            images: list[str] = []
            audios: list[str] = []
            located: dict[str, str] = {}
            missing: list[str] = []
            for file in row["files"]:
                (images if file["role"] == "image" else audios).append(file["name"])
                data = self.store.blob(file["hash"]) if file["hash"] else None
                if data is None:
                    missing.append(file["name"])
                    continue
                target = folder / file["hash"][:16] / safe_name(file["name"])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                located[file["name"]] = str(target)
            invalid = row["invalid"] or (f"{', '.join(missing)}: the file's bytes are not in the QA store"
                                         if missing else None)
            cases.append(Case(id=row["id"], line=row["line"] or 0, prompt=row["prompt"], images=images,
                              audios=audios, expect=row["expect"], base_dir=str(folder), invalid=invalid,
                              located=located, confined=True))
        return cases, folder

    async def execute(self, run_id: int, todo: list[Case], concurrency: Any, visitor: Visitor,
                      outputs: Callable[[int, str], tuple[Any, ...]],
                      cleanup: Callable[[], None] | None = None) -> AsyncIterator[tuple[Any, ...]]:
        """Run ``todo`` into run ``run_id``, yielding ``outputs(run_id, status)`` as each case finishes."""
        session = session_of(visitor)
        active = Active(run_id, asyncio.get_running_loop())
        self.active[session], self.last[session] = active, run_id
        label = f"Run {run_id}"
        total, done, finished = len(todo), 0, False
        stopped: list[RunStopped] = []
        by_id = {c.id: c for c in todo}
        limit = min(max(to_int(concurrency) or 1, 1), self.turns_at_once)
        stop_wait = asyncio.ensure_future(active.stop.wait())
        records: AsyncGenerator[dict[str, Any], None] | None = None
        step: asyncio.Future[dict[str, Any]] | None = None
        def shown(status: Callable[[], str]) -> Awaitable[tuple[Any, ...]]:
            """The tab's outputs with a status: the store's reads (gallery, runs, summary) off the event loop."""
            return asyncio.to_thread(lambda: outputs(run_id, status()))

        try:
            yield await shown(lambda: f"**{label}**: running {total} case{'s' if total != 1 else ''}…")
            bridge = await self.holder.get()
            records = run_cases(bridge, todo, concurrency=limit, ip_token=visitor.ip_token, stopped=stopped,
                                admit=lambda: self.budget_refusal(visitor))
            while True:
                step = asyncio.ensure_future(records.__anext__())
                await asyncio.wait({step, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():  # Stop: cancelling the step closes the runner, which cancels the turns
                    step.cancel()
                    with suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    break
                try:
                    record = step.result()
                except StopAsyncIteration:
                    finished = True
                    break
                await asyncio.to_thread(self.record_case, run_id, visitor, record)
                done += 1
                progress = f"**{label}**: {done} of {total} done · "
                yield await shown(lambda: progress + self.summary(run_id))  # noqa: B023 - awaited at once
        finally:
            stop_wait.cancel()
            if step is not None and not step.done():  # gradio cancelled this handler (the page went away)
                step.cancel()
                with suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
            if records is not None:
                with suppress(Exception):
                    await records.aclose()
            try:  # the thread finishes the run in the store even if this handler is cancelled meanwhile
                await asyncio.to_thread(self.close_run, run_id, by_id, finished and not stopped)
            finally:
                active.ended.set()
                if self.active.get(session) is active:
                    del self.active[session]
                if cleanup is not None:
                    cleanup()

        def ending() -> str:
            if stopped:
                return (f"⚠️ **{label} stopped early**: {stopped[0].message} Cases not started are marked *not run*; "
                        "press *Re-run failed* later to run them.")
            if finished:
                return f"**{label}** finished: {self.summary(run_id)}."
            return f"⏹ **{label}** stopped: {self.summary(run_id)}; unfinished cases are marked *not run*."

        yield await shown(ending)

    def close_run(self, run_id: int, by_id: dict[str, Case], finished: bool) -> None:
        """Mark what did not run as *not run* and the run finished or stopped (SQLite: run in a thread)."""
        self.store.record_missing(run_id, lambda cid: not_run_record(by_id[cid], "stopped by you")
                                  if cid in by_id else {"status": "not_run", "error": "not run"})
        self.store.finish_run(run_id, "finished" if finished else "stopped")

    async def stop(self, visitor: Visitor) -> tuple[int | None, str]:
        """Stop this session's running run (its turns are cancelled on the Space); the run and a sentence."""
        session = session_of(visitor)
        active = self.active.get(session)
        run_id = active.run_id if active else self.last.get(session)
        if run_id is None:
            return None, "Nothing is running."
        if active is not None:
            active.request_stop()
            await asyncio.to_thread(active.ended.wait, STOP_WAIT_S)
        summary = await asyncio.to_thread(self.summary, run_id)
        return run_id, f"⏹ **Run {run_id}** stopped: {summary}; unfinished cases are marked *not run*."

    def again(self, run_id: int) -> list[str]:
        """Cases of a run to run again: every case that did not pass, and every case whose mark is bad."""
        rows, _ = page(self.store, run_id, limit=None)
        return [r["id"] for r in rows if r["status"] != "pass" or r["mark"] == "bad"]

    def start_rerun(self, parent_id: int, concurrency: int, visitor: Visitor
                    ) -> tuple[int, list[Case], Callable[[], None]]:
        again = self.again(parent_id)
        rows, _ = page(self.store, parent_id, limit=None)
        run_id = self.new_run([], (self.store.run(parent_id) or {}).get("source") or "", concurrency, visitor,
                              parent_id=parent_id)
        self.store.copy_cases(parent_id, run_id)
        self.store.carry_over(parent_id, run_id, [r["id"] for r in rows if r["id"] not in set(again)])
        todo, folder = self.materialize(parent_id, set(again))
        return run_id, todo, lambda: shutil.rmtree(folder, ignore_errors=True)

    # ---- marks --------------------------------------------------------------------------------------------

    def mark(self, run_id: Any, case_id: Any, mark: Any, note: Any, visitor: Visitor) -> str:
        """A mark and its note on a case, signed with the visitor's login (``--auth``), else with nobody."""
        run, case = to_int(run_id), str(case_id or "")[:500]
        if run is None or self.store.run(run) is None:
            return "⚠️ Pick a run first."
        value = mark if mark in ("good", "bad") else None
        text = str(note or "")[:MAX_NOTE]
        if not self.store.mark(run, case, value, text, visitor.login):
            return f"⚠️ Pick a case of Run {run} to mark ({case!r} is not one)."
        return f"Marked {case!r} {value}." if value else f"Cleared the mark of {case!r}."

"""The app's QA tab: run many image prompts at once, review them in a gallery, mark them, compare any two runs.

``render_qa_tab(holder, settings, budget)`` is called by ``app.py`` inside ``with gr.Tab("QA"):``; ``holder.get()``
gives the app's one ``Phi4Bridge``; ``settings`` gives the QA store's file (``--qa-db``) and the tab's limits;
each case counts against the app's turn ``budget``. Everything
lives in the store (``phi4_bridge.qa.store``), so marks survive a restart and runs of ``python -m phi4_bridge qa``
show here too. This module is the layout and its wiring; ``mirror.qa.handlers`` does the work, ``mirror.qa.gallery``
draws the HTML.

Cases come from the uploads: every uploaded image (or audio file) with every prompt line, or a JSONL case file
(the format of ``python -m phi4_bridge qa``) whose files are matched by file name among the uploads. A case
file cannot reach other files on the machine running the app: a path that is not uploaded fails its case.

Endpoints (for gradio_client), with what they return:

- ``/qa_run`` (files, prompts, expect, case file, concurrency), ``/qa_rerun`` (concurrency, run),
  ``/qa_stop`` (): (status, gallery HTML, run, page), streamed as cases finish;
- ``/qa_mark`` (run, case id, mark, note, filter, page): (status, gallery HTML);
- ``/qa_show`` (run, filter, page): (gallery HTML, page); ``/qa_runs`` (space, date, case file): the newest run;
- ``/qa_export`` (run): [results.jsonl, report.html, results.csv]; ``/qa_compare`` (run A, run B): HTML.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import gradio as gr

from phi4_bridge.qa.cases import Case, CaseFileError, load_cases
from phi4_bridge.qa.exports import export_run
from phi4_bridge.qa.review import FILTERS, compare, list_runs, spaces
from phi4_bridge.qa.store import QAStore

from ..door.cleanup import WorkDir
from ..settings import AppSettings
from ..visitors.budget import Budget
from ..visitors.identity import Visitor
from ..visitors.usage import UsageLog
from .gallery import GALLERY_JS, compare_html
from .handlers import QAService, RunRefused, StoreBounds, to_int

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm"})

INTRO = """Run many image prompts at once. **Either** upload images and write prompts (one a line): every image
is asked every prompt. **Or** upload a JSONL case file (one `{"id", "image", "prompt", "expect"}` a line, as for
`python -m phi4_bridge qa`) together with the images it names. Every run is kept (runs of
`python -m phi4_bridge qa` too): review a run card by card (keys **j**/**k** move, **g**/**b** mark good/bad with
the card's note), re-run what failed, compare any two runs."""


# ---- cases ---------------------------------------------------------------------------------------------------

def _paths(value: Any) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else getattr(item, "path", item)
        if path:
            out.append(os.fspath(path))
    return out


def cases_from_inputs(files: Any, prompts: str | None, expect: str | None, case_file: Any,
                      max_cases: int) -> list[Case]:
    """The cases to run; ValueError or CaseFileError with a message for the visitor."""
    uploads = _paths(files)
    case_paths = _paths(case_file)
    if case_paths:
        cases = load_cases(case_paths[0])
        by_name = {Path(p).name: p for p in uploads}
        for case in cases:
            case.confined = True
            for written in case.images + case.audios:
                found = by_name.get(Path(written).name)
                if found:
                    case.located[written] = found
                elif not case.invalid:
                    case.invalid = (f"line {case.line}: {written} was not uploaded; upload it together with the "
                                    "case file")
    else:
        lines = [line.strip() for line in (prompts or "").splitlines() if line.strip()]
        if not lines:
            raise ValueError("Write at least one prompt (one a line), or upload a case file.")
        wanted = [expect.strip()] if expect and expect.strip() else []
        cases, seen = [], set()
        sources: list[str | None] = list(uploads) if uploads else [None]  # no upload: the prompts alone
        for path in sources:
            for number, prompt in enumerate(lines, start=1):
                name = Path(path).name if path else "text"
                case_id, n = f"{name} · prompt {number}", 2
                while case_id in seen:
                    case_id, n = f"{name} ({n}) · prompt {number}", n + 1
                seen.add(case_id)
                is_audio = path is not None and Path(path).suffix.lower() in AUDIO_SUFFIXES
                named = [name] if path else []
                cases.append(Case(id=case_id, line=len(cases) + 1, prompt=prompt,
                                  images=[] if is_audio else named, audios=named if is_audio else [],
                                  expect=wanted, base_dir=str(Path(path).parent) if path else ".",
                                  located={name: path} if path else {}, confined=True))
    if len(cases) > max_cases:
        raise ValueError(f"That makes {len(cases)} cases; the tab runs at most {max_cases} at a time "
                         "(use `python -m phi4_bridge qa` for more).")
    return cases


# ---- the tab -------------------------------------------------------------------------------------------------

def run_choices(store: QAStore, space: str | None = None, date: str | None = None,
                source: str | None = None) -> list[tuple[str, str]]:
    return [(f"{r['label']} · {r['state']} · {r['n_pass']}/{r['n_cases']} passed", str(r["id"]))
            for r in list_runs(store, space=space or None, date=date or None, source=source or None)]


def render_qa_tab(bridge_holder: Any, settings: AppSettings, budget: Budget,
                  usage: UsageLog | None = None, work: WorkDir | None = None) -> QAService:
    """Lay out the QA tab in the current Blocks context and wire its handlers; the service (for tests/shutdown).
    ``work``: the app's work folder (the runs' files and the exports go there; without it exports are refused)."""
    store = QAStore(settings.qa_db)
    bounds = StoreBounds(int(settings.qa_max_mb * 1024 * 1024), settings.qa_keep_days * 86400.0)
    qa = QAService(store, bridge_holder, settings.qa_turns_at_once, budget, usage=usage, bounds=bounds, work=work)

    def view(run_id: int | None, message: str) -> tuple[Any, ...]:
        html, number = qa.gallery(run_id)
        return message, html, gr.Dropdown(choices=run_choices(store), value=str(run_id) if run_id else None), number

    async def run_all(files: Any, prompts: str, expect: str, case_file: Any, concurrency: float,
                      request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        try:
            cases = cases_from_inputs(files, prompts, expect, case_file, settings.qa_max_cases)
        except (ValueError, CaseFileError) as exc:
            yield f"⚠️ {exc}", gr.skip(), gr.skip(), gr.skip()
            return
        sources = _paths(case_file)
        visitor = Visitor.of(request)  # read once here, at the edge: the QA service takes the Visitor
        try:
            # reads and hashes the uploads (the store's bound) and writes them: off the event loop
            run_id = await asyncio.to_thread(qa.new_run, cases, Path(sources[0]).name if sources else "",
                                             to_int(concurrency) or 1, visitor)
        except RunRefused as exc:
            yield f"⚠️ {exc}", gr.skip(), gr.skip(), gr.skip()
            return
        async for out in qa.execute(run_id, cases, concurrency, visitor, view):
            yield out

    def new_rerun(parent: int | None, concurrency: float, visitor: Visitor
                  ) -> str | tuple[int, list[Case], Callable[[], None], str]:
        """The re-run of ``parent``'s failed and marked cases, set up in the store (its files written out): its id,
        cases, clean-up and label; or why there is none. SQLite and files: run in a thread."""
        if parent is None or store.run(parent) is None:
            return "⚠️ Pick a run first (or run some cases)."
        again = qa.again(parent)
        if not again:
            return "Nothing to re-run: every case passed and none is marked bad."
        run_id, todo, cleanup = qa.start_rerun(parent, to_int(concurrency) or 1, visitor)
        total = len(store.query("SELECT 1 FROM cases WHERE run_id=?", (parent,)))
        return run_id, todo, cleanup, f" (re-ran {len(again)} of {total} from Run {parent})"

    async def rerun(concurrency: float, run: Any, request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        visitor = Visitor.of(request)
        made = await asyncio.to_thread(new_rerun, to_int(run), concurrency, visitor)
        if isinstance(made, str):
            yield made, gr.skip(), gr.skip(), gr.skip()
            return
        run_id, todo, cleanup, label = made

        def relabelled(rid: int, message: str) -> tuple[Any, ...]:
            return view(rid, message.replace(f"Run {rid}**", f"Run {rid}{label}**", 1))

        async for out in qa.execute(run_id, todo, concurrency, visitor, relabelled, cleanup=cleanup):
            yield out

    async def stop(request: gr.Request) -> tuple[Any, ...]:
        run_id, message = await qa.stop(Visitor.of(request))
        if not run_id:
            return message, gr.skip(), gr.skip(), gr.skip()
        return await asyncio.to_thread(view, run_id, message)

    def show(run: Any, filter: str, page: Any) -> tuple[Any, ...]:
        return qa.gallery(to_int(run), filter if filter in FILTERS else "all", page)

    def save_mark(run: Any, case_id: Any, mark: Any, note: Any, filter: str, page: Any,
                  request: gr.Request) -> tuple[Any, ...]:  # the browser's values: qa.mark checks them
        message = qa.mark(run, case_id, mark, note, Visitor.of(request))
        return message, show(run, filter, page)[0]

    def on_card(filter: str, page: Any, evt: gr.EventData, request: gr.Request) -> tuple[Any, ...]:
        data = getattr(evt, "_data", None) or {}
        if not isinstance(data, dict) or data.get("action") != "mark":
            return gr.skip(), gr.skip()
        return save_mark(data.get("run"), data.get("case"), data.get("mark"), data.get("note"), filter, page,
                         request)

    def runs_list(space: str, date: str, source: str) -> tuple[Any, ...]:
        """The run pickers (the newest matching run picked) and the Space filter's choices."""
        choices = run_choices(store, space, date, source)
        newest = choices[0][1] if choices else None
        every = run_choices(store)
        return (gr.Dropdown(choices=choices, value=newest), gr.Dropdown(choices=every),
                gr.Dropdown(choices=every), gr.Dropdown(choices=["", *spaces(store)]))

    def on_load() -> tuple[Any, ...]:
        """A page opened: the runs, and the newest run's gallery (what was marked before a restart shows)."""
        pickers = runs_list("", "", "")
        newest = run_choices(store)
        html, number = qa.gallery(to_int(newest[0][1]) if newest else None)
        return (*pickers, html, number)

    def export(run: Any) -> list[str] | None:
        run_id = to_int(run)
        if run_id is None or store.run(run_id) is None:
            raise gr.Error("Pick a run to export.")
        folder = work.new_folder("qa") if work else None
        if folder is None:
            raise gr.Error("Exports need the app's work folder.")
        paths = []
        for name, fmt in (("results.jsonl", "jsonl"), ("report.html", "html"), ("results.csv", "csv")):
            (folder / name).write_text(export_run(store, run_id, fmt), encoding="utf-8")
            paths.append(str(folder / name))
        return paths

    def compared(a: Any, b: Any) -> str:
        ra, rb = store.run(to_int(a) or -1), store.run(to_int(b) or -1)
        if ra is None or rb is None:
            return "<p>Pick two runs (A and B) to compare.</p>"
        counts, rows = compare(store, ra["id"], rb["id"])
        return compare_html(f"Run {ra['id']}", f"Run {rb['id']}", counts, rows, store.blob)

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            files = gr.File(label="Images (or audio)", file_count="multiple", type="filepath", elem_id="qa-files")
            case_file = gr.File(label="…or a case file (JSONL)", file_types=[".jsonl", ".json", ".txt"],
                                type="filepath", elem_id="qa-case-file")
        with gr.Column():
            prompts = gr.Textbox(label="Prompts, one a line", lines=5, elem_id="qa-prompts",
                                 placeholder="What is in this picture?\nWhat colour is it?")
            expect = gr.Textbox(label="Every reply must contain (optional)", elem_id="qa-expect")
            concurrency = gr.Slider(1, settings.qa_turns_at_once, value=2, step=1, label="Turns at once",
                                    elem_id="qa-concurrency")
    with gr.Row():
        run_btn = gr.Button("▶ Run all", variant="primary", elem_id="qa-run")
        stop_btn = gr.Button("⏹ Stop", variant="stop", elem_id="qa-stop")
    status = gr.Markdown("Nothing run yet.", label="QA status", elem_id="qa-status")
    with gr.Row():
        space_f = gr.Dropdown(label="Space", choices=[""], value="", allow_custom_value=True, elem_id="qa-f-space")
        date_f = gr.Textbox(label="Date (YYYY-MM-DD)", elem_id="qa-f-date")
        source_f = gr.Textbox(label="Case file name contains", elem_id="qa-f-source")
        refresh = gr.Button("↻ Runs", elem_id="qa-runs-refresh", size="sm")
    run_pick = gr.Dropdown(label="Run", choices=[], allow_custom_value=True, elem_id="qa-run-pick")
    with gr.Row():
        filter_pick = gr.Radio(list(FILTERS), value="all", label="Show", elem_id="qa-filter")
        prev_btn = gr.Button("◀ Previous", size="sm", elem_id="qa-prev")
        page = gr.Number(1, precision=0, label="Page", minimum=1, elem_id="qa-page")
        next_btn = gr.Button("Next ▶", size="sm", elem_id="qa-next")
    gallery = gr.HTML("", js_on_load=GALLERY_JS, elem_id="qa-gallery", label="QA review")
    with gr.Row():
        rerun_btn = gr.Button("↻ Re-run failed and marked-bad", elem_id="qa-rerun")
        export_btn = gr.Button("⬇ Export this run", elem_id="qa-export")
    downloads = gr.File(label="results.jsonl, report.html, results.csv", file_count="multiple", interactive=False,
                        elem_id="qa-downloads")
    with gr.Accordion("Mark a case by its id", open=False):
        with gr.Row():
            case_id = gr.Textbox(label="Case id", elem_id="qa-mark-case")
            mark = gr.Radio(["good", "bad", "unmarked"], value="good", label="Mark", elem_id="qa-mark")
            note = gr.Textbox(label="Note", elem_id="qa-note")
            mark_btn = gr.Button("Save mark", elem_id="qa-save-mark")
    with gr.Accordion("Compare two runs", open=True):
        with gr.Row():
            run_a = gr.Dropdown(label="A (before)", choices=[], allow_custom_value=True, elem_id="qa-run-a")
            run_b = gr.Dropdown(label="B (after)", choices=[], allow_custom_value=True, elem_id="qa-run-b")
            compare_btn = gr.Button("Compare", elem_id="qa-compare-btn")
        comparison = gr.HTML("<p>Pick two runs to compare.</p>", label="QA comparison", elem_id="qa-compare")

    hidden: dict[str, Any] = {"api_visibility": "undocumented"}
    outputs = [status, gallery, run_pick, page]
    limits: dict[str, Any] = {"concurrency_limit": 2, "concurrency_id": "qa"}
    run_btn.click(run_all, [files, prompts, expect, case_file, concurrency], outputs, api_name="qa_run", **limits)
    rerun_btn.click(rerun, [concurrency, run_pick], outputs, api_name="qa_rerun", **limits)
    stop_btn.click(stop, None, outputs, queue=False, api_name="qa_stop")
    mark_btn.click(save_mark, [run_pick, case_id, mark, note, filter_pick, page], [status, gallery],
                   api_name="qa_mark")
    gallery.click(on_card, [filter_pick, page], [status, gallery], **hidden)
    shown = [run_pick, filter_pick, page]
    run_pick.input(lambda r, f: show(r, f, 1), [run_pick, filter_pick], [gallery, page], api_name="qa_show_run",
                   **hidden)
    filter_pick.input(lambda r, f: show(r, f, 1), [run_pick, filter_pick], [gallery, page], **hidden)
    page.submit(show, shown, [gallery, page], api_name="qa_show")
    prev_btn.click(lambda r, f, p: show(r, f, (to_int(p) or 1) - 1), shown, [gallery, page], **hidden)
    next_btn.click(lambda r, f, p: show(r, f, (to_int(p) or 1) + 1), shown, [gallery, page], **hidden)
    refresh.click(runs_list, [space_f, date_f, source_f], [run_pick, run_a, run_b, space_f], api_name="qa_runs").then(
        lambda r: show(r, "all", 1), run_pick, [gallery, page], **hidden)
    export_btn.click(export, run_pick, downloads, api_name="qa_export")
    compare_btn.click(compared, [run_a, run_b], comparison, api_name="qa_compare")
    from gradio.context import Context

    if Context.root_block is not None:
        Context.root_block.load(on_load, None, [run_pick, run_a, run_b, space_f, gallery, page], **hidden)
    return qa

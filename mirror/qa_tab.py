"""The app's QA tab: run many image prompts at once, watch them finish, mark results, download, compare runs.

``render_qa_tab(holder)`` is called by ``app.py`` inside ``with gr.Tab("QA"):``; ``holder.get()`` gives the
app's one ``Phi4Bridge``. Everything a visitor does lives in their own ``gr.State`` (the last two runs).

Cases come from the uploads: every uploaded image (or audio file) with every prompt line, or a JSONL case file
(the format of ``python -m phi4_bridge qa``) whose files are matched by file name among the uploads. A case
file cannot reach other files on the machine running the app: a path that is not uploaded fails its case.

Endpoints (for gradio_client): ``/qa_run``, ``/qa_rerun``, ``/qa_mark``, ``/qa_stop``; each returns
(status markdown, results table HTML, case choices, downloads, comparison HTML).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gradio as gr

from phi4_bridge.qa.cases import Case, CaseFileError, load_cases
from phi4_bridge.qa.report import comparison_fragment, render_report, table_fragment
from phi4_bridge.qa.runner import REPORT_NAME, RESULTS_NAME, RunStopped, not_run_record, run_cases, summarise

from .cleanup import current

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm"})
MAX_CASES = 200
MAX_CONCURRENCY = 4

INTRO = """Run many image prompts at once. **Either** upload images and write prompts (one a line): every image
is asked every prompt. **Or** upload a JSONL case file (one `{"id", "image", "prompt", "expect"}` a line, as for
`python -m phi4_bridge qa`) together with the images it names. Results stay in this browser session; the last
two runs can be compared side by side."""


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


def cases_from_inputs(files: Any, prompts: str | None, expect: str | None, case_file: Any) -> list[Case]:
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
        for path in uploads or [None]:
            for number, prompt in enumerate(lines, start=1):
                name = Path(path).name if path else "text"
                case_id, n = f"{name} · prompt {number}", 2
                while case_id in seen:
                    case_id, n = f"{name} ({n}) · prompt {number}", n + 1
                seen.add(case_id)
                is_audio = bool(path) and Path(path).suffix.lower() in AUDIO_SUFFIXES
                written = [name] if path else []
                cases.append(Case(id=case_id, line=len(cases) + 1, prompt=prompt,
                                  images=[] if is_audio else written, audios=written if is_audio else [],
                                  expect=wanted, base_dir=str(Path(path).parent) if path else ".",
                                  located={name: path} if path else {}, confined=True))
    if len(cases) > MAX_CASES:
        raise ValueError(f"That makes {len(cases)} cases; the tab runs at most {MAX_CASES} at a time "
                         "(use `python -m phi4_bridge qa` for more).")
    return cases


# ---- per-visitor state ---------------------------------------------------------------------------------------

def _fresh(state: Any) -> dict[str, Any]:
    return state if isinstance(state, dict) and "runs" in state else {"runs": [], "count": 0}


def _new_run(state: dict[str, Any], cases: list[Case], label: str,
             records: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    state["count"] += 1
    run = {"label": f"Run {state['count']}{label}", "order": [c.id for c in cases],
           "cases": {c.id: c for c in cases}, "records": records or {}, "running": set(),
           "dir": _run_folder()}
    state["runs"] = [*state["runs"][-1:], run]
    return run


def _run_folder() -> str:
    """Where a run's downloads go: the app's own ``qa`` folder (cleaned on a schedule, removed at exit)."""
    work = current()
    return str(work.new_folder("qa")) if work else tempfile.mkdtemp(prefix="phi4-qa-")


def _rows(run: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for case_id in run["order"]:
        record = run["records"].get(case_id)
        if record is None:
            status = "running" if case_id in run["running"] else "queued"
            record = {**run["cases"][case_id].describe(), "status": status, "reply": ""}
        rows.append(record)
    return rows


def _image_paths(run: dict[str, Any]) -> dict[str, list[str]]:
    """The files thumbnails may be drawn from: only what the visitor uploaded (a confined case's unlocated
    file is ``""``), and only inside gradio's upload folder."""
    return {case_id: [p if p and _uploaded(p) else "" for p in case.image_paths]
            for case_id, case in run["cases"].items()}


def _uploaded(path: str) -> bool:
    from gradio.utils import get_upload_folder

    try:
        return Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve())
    except (OSError, ValueError):
        return False


def _write_downloads(run: dict[str, Any]) -> list[str]:
    folder = Path(run["dir"])
    rows = [r for r in _rows(run) if r["status"] not in ("queued", "running")]
    results = folder / RESULTS_NAME
    results.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = folder / REPORT_NAME
    report.write_text(render_report(_rows(run), _image_paths(run), title=f"Phi-4 image prompt QA · {run['label']}"),
                      encoding="utf-8")
    return [str(results), str(report)]


def _comparison(state: dict[str, Any]) -> str:
    runs = state["runs"]
    if len(runs) < 2:
        return "<p>Run twice (or re-run the failed cases) to see two runs side by side here.</p>"
    old, new = runs
    paths = {**_image_paths(old), **_image_paths(new)}
    return comparison_fragment(_rows(old), _rows(new), old["label"], new["label"], paths)


def _summary(run: dict[str, Any]) -> str:
    c = summarise(_rows(run))
    return f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors"


def _outputs(state: dict[str, Any], status: str, *, final: bool = False) -> tuple[Any, ...]:
    run = state["runs"][-1]
    table = table_fragment(_rows(run), _image_paths(run))
    if not final:
        return status, table, state, gr.skip(), gr.skip(), gr.skip()
    choices = gr.Dropdown(choices=run["order"], value=run["order"][0] if run["order"] else None)
    return status, table, state, choices, _write_downloads(run), _comparison(state)


async def _execute(holder: Any, state: dict[str, Any], todo: list[Case], concurrency: Any,
                   request: gr.Request | None) -> AsyncIterator[tuple[Any, ...]]:
    run = state["runs"][-1]
    total, done = len(todo), 0
    yield _outputs(state, f"**{run['label']}**: running {total} case{'s' if total != 1 else ''}…")
    bridge = await holder.get()
    ip_token = request.headers.get("x-ip-token") if request is not None else None
    stopped: list[RunStopped] = []
    limit = min(max(int(concurrency or 1), 1), MAX_CONCURRENCY)
    async for record in run_cases(bridge, todo, concurrency=limit, ip_token=ip_token, stopped=stopped,
                                  on_start=lambda case: run["running"].add(case.id)):
        run["running"].discard(record["id"])
        run["records"][record["id"]] = record
        done += 1
        yield _outputs(state, f"**{run['label']}**: {done} of {total} done · {_summary(run)}")
    message = f"**{run['label']}** finished: {_summary(run)}."
    if stopped:
        message = (f"⚠️ **{run['label']} stopped early**: {stopped[0].message} Cases not started are marked "
                   "*not run*; press *Re-run failed* later to run them.")
    yield _outputs(state, message, final=True)


def _skip_all(state: dict[str, Any], message: str) -> tuple[Any, ...]:
    return message, gr.skip(), state, gr.skip(), gr.skip(), gr.skip()


# ---- the tab -------------------------------------------------------------------------------------------------

def render_qa_tab(bridge_holder: Any) -> None:
    """Lay out the QA tab in the current Blocks context and wire its handlers."""

    async def run_all(files: Any, prompts: str, expect: str, case_file: Any, concurrency: float, state: Any,
                      request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        state = _fresh(state)
        try:
            cases = cases_from_inputs(files, prompts, expect, case_file)
        except (ValueError, CaseFileError) as exc:
            yield _skip_all(state, f"⚠️ {exc}")
            return
        _new_run(state, cases, "")
        async for out in _execute(bridge_holder, state, cases, concurrency, request):
            yield out

    async def rerun(concurrency: float, state: Any, request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        state = _fresh(state)
        if not state["runs"]:
            yield _skip_all(state, "⚠️ Run some cases first.")
            return
        last = state["runs"][-1]
        again = [cid for cid in last["order"] if (last["records"].get(cid) or {}).get("status") != "pass"
                 or (last["records"].get(cid) or {}).get("mark") == "bad"]
        if not again:
            yield _skip_all(state, "Nothing to re-run: every case passed and none is marked bad.")
            return
        kept = {cid: dict(r) for cid, r in last["records"].items() if cid not in again}
        _new_run(state, [last["cases"][cid] for cid in last["order"]], f" (re-ran {len(again)} of "
                 f"{len(last['order'])} from {last['label']})", kept)
        async for out in _execute(bridge_holder, state, [last["cases"][cid] for cid in again], concurrency,
                                  request):
            yield out

    def save_mark(case_id: str | None, mark: str | None, note: str | None, state: Any) -> tuple[Any, ...]:
        state = _fresh(state)
        if not state["runs"]:
            return _skip_all(state, "⚠️ Run some cases first.")
        run = state["runs"][-1]
        record = run["records"].get(case_id or "")
        if record is None:
            return _skip_all(state, f"⚠️ Pick a finished case of {run['label']} to mark.")
        if mark in ("good", "bad"):
            record["mark"], record["note"] = mark, (note or "").strip() or None
            said = f"Marked {case_id!r} {mark}."
        else:
            record.pop("mark", None)
            record.pop("note", None)
            said = f"Cleared the mark of {case_id!r}."
        status, table, state, _, _, _ = _outputs(state, said)
        return status, table, state, gr.skip(), _write_downloads(run), _comparison(state)

    def stop(state: Any) -> tuple[Any, ...]:
        """After Stop: cases that had not finished become "not run" (Re-run picks them up); downloads refresh."""
        state = _fresh(state)
        if not state["runs"]:
            return _skip_all(state, "Nothing is running.")
        run = state["runs"][-1]
        run["running"] = set()
        for case_id in run["order"]:
            if case_id not in run["records"]:
                run["records"][case_id] = not_run_record(run["cases"][case_id], "stopped by you")
        status, table, state, _, _, _ = _outputs(state, f"⏹ **{run['label']}** stopped: {_summary(run)}; "
                                                        "unfinished cases are marked *not run*.")
        return status, table, state, gr.skip(), _write_downloads(run), _comparison(state)

    gr.Markdown(INTRO)
    state = gr.State(None)
    with gr.Row():
        with gr.Column():
            files = gr.File(label="Images (or audio)", file_count="multiple", type="filepath",
                            elem_id="qa-files")
            case_file = gr.File(label="…or a case file (JSONL)", file_types=[".jsonl", ".json", ".txt"],
                                type="filepath", elem_id="qa-case-file")
        with gr.Column():
            prompts = gr.Textbox(label="Prompts, one a line", lines=5, elem_id="qa-prompts",
                                 placeholder="What is in this picture?\nWhat colour is it?")
            expect = gr.Textbox(label="Every reply must contain (optional)", elem_id="qa-expect")
            concurrency = gr.Slider(1, MAX_CONCURRENCY, value=2, step=1, label="Turns at once",
                                    elem_id="qa-concurrency")
    with gr.Row():
        run_btn = gr.Button("▶ Run all", variant="primary", elem_id="qa-run")
        rerun_btn = gr.Button("↻ Re-run failed and marked-bad", elem_id="qa-rerun")
        stop_btn = gr.Button("⏹ Stop", variant="stop", elem_id="qa-stop")
    status = gr.Markdown("Nothing run yet.", label="QA status", elem_id="qa-status")
    table = gr.HTML(label="QA results", elem_id="qa-table")
    with gr.Row():
        case_pick = gr.Dropdown(label="Case", choices=[], allow_custom_value=True, elem_id="qa-mark-case")
        mark = gr.Radio(["good", "bad", "unmarked"], value="good", label="Mark", elem_id="qa-mark")
        note = gr.Textbox(label="Note", elem_id="qa-note")
        mark_btn = gr.Button("Save mark", elem_id="qa-save-mark")
    downloads = gr.File(label="Download results.jsonl and report.html", file_count="multiple", interactive=False,
                        elem_id="qa-downloads")
    with gr.Accordion("The last two runs side by side", open=False):
        compare = gr.HTML("<p>Run twice to compare.</p>", label="QA comparison", elem_id="qa-compare")

    outputs = [status, table, state, case_pick, downloads, compare]
    limits = {"concurrency_limit": 2, "concurrency_id": "qa"}
    ran = run_btn.click(run_all, [files, prompts, expect, case_file, concurrency, state], outputs,
                        api_name="qa_run", **limits)
    reran = rerun_btn.click(rerun, [concurrency, state], outputs, api_name="qa_rerun", **limits)
    stop_btn.click(stop, state, outputs, cancels=[ran, reran], queue=False, api_name="qa_stop")
    mark_btn.click(save_mark, [case_pick, mark, note, state], outputs, api_name="qa_mark")

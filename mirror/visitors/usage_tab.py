"""The host's "Usage" tab: per visitor over the last hours, turns, failed turns, answering time and GPU seconds.

Why a tab only the host sees: visitors' names and addresses are the host's business alone. The tab is hidden for
everyone, shown on page load only to the host (``mirror.visitors.host.is_host``), and its one route (``/usage``,
undocumented) checks the host again on every call: a visitor who un-hides the tab in the browser, or an API client
calling the route, gets an empty table and one sentence, never a row.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from ..settings import AppSettings
from .host import is_host
from .usage import UsageLog, VisitorUsage

SPANS = [("the last hour", 1), ("the last 6 hours", 6), ("the last 24 hours", 24), ("the last 7 days", 168)]
NOT_HOST = "Only the host sees usage."
GPU_NOTE = ("GPU-seconds: neither ZeroGPU nor the stand-in reports them per turn (ZeroGPU only says what quota is "
            "left when it runs low), so the column stays empty until a Space does; **answering** is the time from "
            "the Space starting the job to its last word, the closest the app sees to GPU time.")


def table(rows: list[VisitorUsage], hours: float) -> str:
    """Markdown: one row per visitor, the busiest first, and the totals."""
    if not rows:
        return f"No turns in the last {hours:g} hours."
    lines = ["| visitor | turns | failed | answering (s) | GPU-seconds | last turn (UTC) |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        last = datetime.fromtimestamp(r.last_at, tz=UTC).strftime("%Y-%m-%d %H:%M")
        gpu = "not reported" if r.gpu_s is None else f"{r.gpu_s:.1f}"
        who = html.escape(r.visitor).replace("|", "&#124;")
        lines.append(f"| {who} | {r.turns} | {r.failed} | {r.answer_s:.1f} | {gpu} | {last} |")
    lines.append(f"| **all** | {sum(r.turns for r in rows)} | {sum(r.failed for r in rows)} | "
                 f"{sum(r.answer_s for r in rows):.1f} | | |")
    return "\n".join(lines)


def render_usage_tab(demo: gr.Blocks, settings: AppSettings, usage: UsageLog | None) -> None:
    """The tab, hidden until a page load shows it to the host; call inside the Blocks."""

    def view(hours: Any, request: gr.Request) -> str:
        if not is_host(settings, request):
            return NOT_HOST
        if usage is None:
            return "The usage store is off."
        try:
            span = float(hours)
        except (TypeError, ValueError):
            span = 24.0
        # the file's path only here, for the host: /config (every visitor's) never names it
        return table(usage.per_visitor(time.time() - span * 3600), span) + f"\n\nFrom `{usage.path}`."

    with gr.Tab("Usage", visible=False, elem_id="usage-tab") as tab:
        gr.Markdown("Turns per visitor (login, else address), from the usage store (`--usage-db`). " + GPU_NOTE,
                    elem_id="usage-note")
        with gr.Row():
            span = gr.Dropdown(choices=SPANS, value=24, label="Over", elem_id="usage-span", scale=3)
            refresh = gr.Button("↻ Refresh", size="sm", elem_id="usage-refresh", scale=1)
        shown = gr.Markdown("", elem_id="usage-table")

    def on_load(hours: Any, request: gr.Request) -> tuple[gr.Tab, str]:
        host = is_host(settings, request)
        return gr.Tab(visible=host), (view(hours, request) if host else "")

    demo.load(on_load, span, [tab, shown], api_visibility="undocumented")
    refresh.click(view, span, shown, api_name="usage", api_visibility="undocumented")
    span.change(view, span, shown, api_visibility="undocumented")

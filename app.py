"""Phi-4 Mirror: chat in your browser with Microsoft's Phi-4-multimodal (a ZeroGPU Space) through phi4_bridge.

    python app.py                 # 127.0.0.1:7860, the real Space (falls back to the offline stand-in, loudly)
    python app.py --standin       # the project's stand-in Space on a free local port: no network needed
    python app.py --share         # a share link, always behind a login (made up and printed if --auth is absent)

This file is the layout plus the wiring of named handlers; the parts live in ``mirror/``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# gradio switches matplotlib's backend around every streamed step when matplotlib is installed; fixed, that costs
# next to nothing (benchmarks/REPORT.md has the figures).
os.environ.setdefault("MPLBACKEND", "agg")

import gradio as gr  # noqa: E402
from gradio.events import Dependency  # noqa: E402

from mirror.apis.mcp_tools import Phi4Tools, register_tools  # noqa: E402
from mirror.apis.openai_api import AppRunner, api_settings, openai_routes  # noqa: E402
from mirror.chat import chat_values as cv  # noqa: E402
from mirror.chat.chatbot import page_form, remember_forms  # noqa: E402
from mirror.chat.export import export_refusal, write_exports  # noqa: E402
from mirror.chat.handlers import ChatService  # noqa: E402
from mirror.door.cleanup import Janitor, WorkDir  # noqa: E402
from mirror.door.guard import Guard  # noqa: E402
from mirror.qa.tab import render_qa_tab  # noqa: E402
from mirror.serve.launch import serve  # noqa: E402
from mirror.settings import AppSettings, parse_settings  # noqa: E402
from mirror.space.generation import chosen, read_options, render_settings  # noqa: E402
from mirror.space.space_status import Mode, SpaceStatus, auth_headers  # noqa: E402
from mirror.visitors import budget as turn_budget  # noqa: E402
from mirror.visitors.host import is_host, who_may_switch  # noqa: E402
from mirror.visitors.identity import Visitor  # noqa: E402
from mirror.visitors.redis_budget import RedisBudget, StoreUnreachable  # noqa: E402
from mirror.visitors.redis_usage import RedisUsage  # noqa: E402
from mirror.visitors.shared_budget import SharedBudget  # noqa: E402
from mirror.visitors.usage import UsageLog, open_store  # noqa: E402
from mirror.visitors.usage_tab import render_usage_tab  # noqa: E402
from phi4_bridge.config import Limits  # noqa: E402

CSS = """
.mirror-banner { padding: 14px 18px; border-radius: 10px; font-size: 1.1em; line-height: 1.45; }
.mirror-banner-fallback { background: #fde68a; color: #7c2d12; border: 3px solid #d97706; }
.mirror-banner-standin { background: #e0e7ff; color: #1e1b4b; border: 2px solid #6366f1; }
#space-badge p { font-size: 0.92em; margin: 0; }
"""

# When the process serving this page stops (a replica of a cluster stopped or restarted, mirror/cluster.py), gradio's
# page shows its own toast, "Connection to the server was lost. Attempting reconnection...", and reloads once a server
# answers. That says nothing of the turn, so the page also shows one sentence of ours, at the top, as soon as
# gradio's toast appears (a watch on gradio's toasts only, not on the chat, where a visitor may type those words).
# The reload may come within two seconds, too soon to read it: the reloaded page says what happened once more, until
# the visitor closes it (the tab's sessionStorage carries that over the reload, and nothing else).
LOST_SENTENCE = ("The server answering this page has stopped: the page will reload by itself as soon as a server "
                 "answers again (within seconds when another one is running), with your chat up to the last finished "
                 "reply; a reply that was still coming in is lost (it counted as a turn), so send that message again.")
BACK_SENTENCE = ("This page reloaded because the server answering it stopped: your chat is back up to the last "
                 "finished reply, and a reply that was still coming in was lost (it counted as a turn), so send that "
                 "message again.")
HEAD = """<script>
(() => {
  const GRADIO = "Connection to the server was lost";
  const FLAG = "phi4-mirror-connection-lost";
  const show = (id, sentence) => {
    if (document.getElementById(id)) return;
    const note = document.createElement("div");
    note.id = id;
    note.setAttribute("role", "alert");
    note.title = "Click to close";
    note.textContent = sentence;
    note.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:100000;padding:12px 18px;cursor:pointer;" +
      "background:#fde68a;color:#7c2d12;border-bottom:3px solid #d97706;font:1rem/1.45 system-ui,sans-serif;" +
      "text-align:center";
    note.addEventListener("click", () => note.remove());
    document.body.appendChild(note);
  };
  const watch = () => {
    if (sessionStorage.getItem(FLAG)) {
      sessionStorage.removeItem(FLAG);
      show("mirror-reconnected", @BACK@);
    }
    new MutationObserver(() => {
      for (const toast of document.querySelectorAll(".toast-body")) {
        if (toast.textContent.includes(GRADIO)) {
          sessionStorage.setItem(FLAG, "1");
          show("mirror-connection-lost", @LOST@);
          return;
        }
      }
    }).observe(document.body, {childList: true, subtree: true});
  };
  document.body ? watch() : document.addEventListener("DOMContentLoaded", watch);
})();
</script>""".replace("@LOST@", json.dumps(LOST_SENTENCE)).replace("@BACK@", json.dumps(BACK_SENTENCE))

PAGE_REFRESH_S = 15.0  # how often an open page re-reads the banner and badge (sooner with a short --recheck-every)

EXAMPLES = [
    {"text": "What shape and colour do you see?", "files": [str(cv.EXAMPLES_DIR / "red-circle.png")]},
    {"text": "Describe the pattern in this picture.", "files": [str(cv.EXAMPLES_DIR / "stripes.png")]},
    {"text": "Write a haiku about a small GPU in a big cloud.", "files": []},
]


def make_budget(settings: AppSettings) -> turn_budget.Budget:
    """The one turn budget: in Redis for replicas on several hosts (``--budget-store``), in one SQLite file for
    the replicas of one host (``PHI4_BUDGET_DB``, set by mirror/cluster.py), else in this process's memory.
    ``StoreUnreachable`` (a sentence without the URL's password) when the Redis store does not answer."""
    if settings.budget_store:
        return RedisBudget(settings.visitor_turns, settings.budget_store, settings.admins)
    if settings.budget_db:
        return SharedBudget(settings.visitor_turns, settings.budget_db, settings.admins)
    return turn_budget.Budget(settings.visitor_turns, settings.admins)


def make_usage(settings: AppSettings) -> UsageLog | None:
    """The usage log: in the budget's Redis for replicas on several hosts (``--budget-store``, unless ``--usage-db``
    names a file), else one SQLite file (the user's data folder: the replicas of one host share it); None (logged)
    when the file cannot be opened. ``StoreUnreachable`` when Redis does not answer, as for the budget."""
    if settings.budget_store and settings.usage_db is None:
        return RedisUsage(settings.budget_store)
    return open_store(settings.usage_db)


@dataclass(frozen=True)
class Mirror:
    """What ``build_demo`` makes: the page, and the parts that serving it and shutting it down need."""

    demo: gr.Blocks
    chat: ChatService  # the shutdown cancels its running turns on the Space
    runner: AppRunner  # the turns of /v1 and the MCP tools
    guard: Guard  # the door's bookkeeping, attached to the page's events


def build_demo(settings: AppSettings, status: SpaceStatus, guard: Guard | None = None,
               budget: turn_budget.Budget | None = None, work: WorkDir | None = None) -> Mirror:
    """The page and its parts. ``work``: the app's work folder (exports, QA files, the API's uploads go there;
    ``main`` makes it; None, as in tests: temporary folders, and the QA tab refuses exports)."""
    guard = guard or Guard(settings)
    budget = budget or make_budget(settings)
    usage = make_usage(settings)
    chat = ChatService(status.holder, settings, guard, budget=budget, usage=usage)
    runner = AppRunner(chat, settings, guard)  # the turns of /v1 and of the MCP tools
    limits: dict[str, Any] = {"concurrency_limit": settings.concurrency_total, "concurrency_id": "chat"}
    # A turn's updates leave its handler in the form the page takes (``postprocess=False``): gradio would hand each
    # update's postprocess to a worker thread and back, which at 50 conversations was a sixth of the app's CPU and
    # a wait for the GIL on the way to every first word; the chat's postprocess is cheap (mirror/chat/chatbot.py)
    streamed: dict[str, Any] = {**limits, "postprocess": False}
    hidden: dict[str, Any] = {"api_visibility": "undocumented"}
    # the banner's and the badge's refreshes (on load, every few seconds, after a turn): no progress timer flashing
    quiet: dict[str, Any] = {**hidden, "show_progress": "hidden"}
    # gradio deletes the files it cached for this app (uploads, outputs) older than the age, and all at shutdown
    delete_cache = (max(1, int(settings.cache_sweep_every_s)), max(1, int(settings.cache_max_age_s)))

    with gr.Blocks(title="Phi-4 Mirror", delete_cache=delete_cache) as demo:
        banner = gr.HTML(status.banner(), elem_id="mirror-banner")
        switch = gr.Button("Switch to the real Phi-4 Space", variant="primary", visible=False, elem_id="switch-btn")
        gr.Markdown("## Phi-4 Mirror · chat with Phi-4-multimodal (text, images, speech)")
        badge = gr.Markdown("Checking the Space…", elem_id="space-badge")
        picker = use = refresh = None
        if settings.allow_space_switch:  # only then: no picker, no event, no API route can switch without the flag
            with gr.Accordion("Space", open=False, elem_id="space-picker-box"):
                choices = status.choices()
                picker = gr.Dropdown(choices=choices, value=in_use(status, choices),
                                     label="Phi-4-multimodal Spaces on the Hub, with their stage",
                                     elem_id="space-picker", interactive=True)
                with gr.Row():
                    use = gr.Button("Use this Space", variant="primary", size="sm", elem_id="space-use-btn")
                    refresh = gr.Button("↻ Ask the Hub again", size="sm", elem_id="space-refresh-btn")
                picker_note = gr.Markdown("", elem_id="space-picker-note")
        # Replicas behind nginx share one secret (mirror/cluster.py sets it): any of them can read the saved chat.
        saved = gr.BrowserState([], storage_key="phi4-mirror-chat", secret=settings.browser_secret)

        with gr.Tab("Chat"):
            # Each message in its own bubble: a turn's files and its text are then separate bubbles, and Edit (on
            # the text) works; grouped, gradio's Edit > Submit throws on the file part and nothing is sent. Each
            # message is postprocessed once, not once per streamed update (mirror/chat/chatbot.py).
            chatbot = gr.Chatbot(label="Phi-4-multimodal", elem_id="chatbot", editable="user", height=520,
                                 group_consecutive_messages=False,
                                 placeholder="Ask anything, or attach an image or a recording.")
            remember_forms(chatbot)
            box = gr.MultimodalTextbox(file_types=["image", "audio"], file_count="multiple",
                                       sources=["upload", "microphone"], elem_id="prompt", show_label=False,
                                       placeholder="Message Phi-4… (attach images or audio, or record)")
            with gr.Row():
                stop = gr.Button("⏹ Stop", variant="stop", elem_id="stop-btn", size="sm")
                clear = gr.Button("🗑 Clear", elem_id="clear-btn", size="sm")
                export = gr.Button("⬇ Prepare download", elem_id="export-btn", size="sm")
                dl_json = gr.DownloadButton("JSON", visible=False, size="sm", elem_id="dl-json")
                dl_md = gr.DownloadButton("Markdown", visible=False, size="sm", elem_id="dl-md")
            gr.Examples(examples=EXAMPLES, inputs=[box], label="Try one")
            now = status.holder.config
            controls = render_settings(read_options(now.space_url, headers=auth_headers(now, now.space_url),
                                                    config=status.config_of(now.space_url)))

        with gr.Tab("QA"):
            render_qa_tab(status.holder, settings, budget, usage, work)
        render_usage_tab(demo, settings, usage)  # hidden unless the host opens the page

        with gr.Row(visible=False):  # the /chat API's own components
            api_message = gr.MultimodalTextbox(file_types=["image", "audio"], file_count="multiple")
            api_history = gr.JSON([], label="history")
            api_reply = gr.Textbox(label="reply")
            api_trigger = gr.Button()

        # A turn: show the user's message, stream the reply, unlock the input, remember the chat in the browser.
        async def respond(values: dict[Any, Any], request: gr.Request) -> AsyncGenerator[list[dict[str, Any]], None]:
            visitor = Visitor.of(request)  # read once here, at the edge: the chat service takes the Visitor
            async with aclosing(chat.respond(values[chatbot], visitor, chosen(values, controls))) as updates:
                async for update in updates:
                    yield page_form(chatbot, update)  # made here: see ``streamed`` above

        turn_inputs = {chatbot, *controls}

        async def badge_for(request: gr.Request) -> str:
            """The badge, with what this visitor has left of the turn budget."""
            left = budget.describe(Visitor.of(request).client)
            return await status.badge() + (f" · 🎟️ {left}" if left else "")

        # Unlocking and saving are instant: not queued, so after a Stop they cannot wait behind other turns and
        # then save the chat over the Stop's own save (which holds the "Stopped" note).
        def answered(event: Dependency) -> None:
            event.then(chat.unlock, None, box, queue=False, **hidden).then(
                lambda h: h, chatbot, saved, queue=False, **hidden).then(badge_for, None, badge, **quiet)

        sent = box.submit(chat.add_user_turn, [box, chatbot], [chatbot, box], queue=False, **hidden)
        sent = sent.then(respond, turn_inputs, chatbot, **streamed, **hidden)
        answered(sent)
        retried = chatbot.retry(chat.prepare_retry, chatbot, [chatbot, box], queue=False, **hidden)
        retried = retried.then(respond, turn_inputs, chatbot, **streamed, **hidden)
        answered(retried)
        edited = chatbot.edit(chat.edit, [chatbot, saved], [chatbot, box], queue=False, **hidden)
        edited = edited.then(respond, turn_inputs, chatbot, **streamed, **hidden)
        answered(edited)
        running = [sent, retried, edited]

        stop.click(chat.stopped, chatbot, [chatbot, box], cancels=running, queue=False, **hidden).then(
            lambda h: h, chatbot, saved, queue=False, **hidden)
        chatbot.undo(chat.undo, chatbot, [chatbot, box], queue=False, **hidden).then(
            lambda h: h, chatbot, saved, queue=False, **hidden)
        clear.click(lambda: ([], [], gr.MultimodalTextbox(interactive=True)), None, [chatbot, saved, box],
                    cancels=running, queue=False, **hidden)
        chatbot.clear(lambda: [], None, saved, cancels=running, queue=False, **hidden)
        def prepare_downloads(history: list[cv.Message]) -> tuple[gr.DownloadButton, gr.DownloadButton]:  # the API name
            return downloads_for(history, settings.bridge.limits, work)

        export.click(prepare_downloads, chatbot, [dl_json, dl_md], **hidden)

        api_trigger.click(chat.chat_api, [api_message, api_history], api_reply, api_name="chat",
                          api_description="Send one message (text + files, as the multimodal textbox gives) and "
                          "stream the reply text. Without a history, your client's session keeps the conversation.",
                          **streamed)  # its reply is text: what a Textbox's postprocess gives it as

        # Page load: bring back this browser's chat, show where answers come from; refresh that now and then. The
        # chat comes back instantly (not queued): queued, on a busy app it could wait until after a turn the visitor
        # sent at once, and then replace that turn with the saved chat (seen once in a run of the suite under load)
        demo.load(lambda h: cv.safe_history(h), saved, chatbot, queue=False, **hidden)
        demo.load(lambda: page_status(status), None, [banner, switch], **quiet)
        demo.load(badge_for, None, badge, **quiet)
        timer = gr.Timer(min(PAGE_REFRESH_S, settings.recheck_every_s))
        timer.tick(lambda: page_status(status), None, [banner, switch], **quiet).then(
            badge_for, None, badge, **quiet)
        def switch_back(request: gr.Request) -> tuple[str, gr.Button]:  # for everyone: the host's only, checked here
            return switch_space(status, settings, request)

        switch.click(switch_back, None, [banner, switch], **hidden).then(
            badge_for, None, badge, **quiet)
        if picker is not None and use is not None and refresh is not None:
            def load_picker(request: gr.Request) -> tuple[gr.Dropdown, gr.Button, gr.Button, str]:
                return picker_for(status, settings, request)

            def ask_hub_again(request: gr.Request) -> gr.Dropdown:  # only the host makes the app ask the Hub
                return picker_update(status, fresh=is_host(settings, request))

            def use_space(space: str | None, request: gr.Request) -> tuple[str, gr.Button, gr.Dropdown]:
                return pick_space(status, space, settings, request)

            demo.load(load_picker, None, [picker, use, refresh, picker_note], **hidden)
            refresh.click(ask_hub_again, None, picker, **hidden)
            use.click(use_space, picker, [banner, switch, picker],
                      api_name="switch_space", api_description="Switch the app to another Phi-4-multimodal Space "
                      "of the Hub's list (started with --allow-space-switch; the host only)").then(
                badge_for, None, badge, **quiet)
        if settings.mcp:  # Phi-4 as tools for agents (mirror/apis/mcp_tools.py); served with launch(mcp_server=True)
            register_tools(Phi4Tools(runner, api_settings(settings, work)))
        demo.unload(chat.forget)
    guard.attach(demo, budget)
    return Mirror(demo, chat, runner, guard)


def examples_in_cache(demo: gr.Blocks) -> set[str]:
    """The files gradio cached for good (the examples): the janitor leaves them."""
    keep: set[str] = set()
    for block in list(demo.blocks.values()):
        keep.update(getattr(block, "keep_in_cache", set()))
    return keep


def downloads_for(history: list[cv.Message], limits: Limits,
                  work: WorkDir | None = None) -> tuple[gr.DownloadButton, gr.DownloadButton]:
    """The chat as JSON and Markdown files, for a chat within the history limits only: an export is a file the
    app keeps until the cache age, so it is bounded like everything else a visitor sends (issue 27)."""
    why = export_refusal(history, limits)
    if why is not None:
        raise gr.Error(why, print_exception=False)
    json_path, md_path = write_exports(history, work)
    return gr.DownloadButton(value=json_path, visible=True), gr.DownloadButton(value=md_path, visible=True)


def page_status(status: SpaceStatus) -> tuple[str, gr.Button]:
    return status.banner(), gr.Button(visible=status.mode in (Mode.FALLBACK, Mode.OTHER) and status.real_back)


def switch_space(status: SpaceStatus, settings: AppSettings, request: gr.Request) -> tuple[str, gr.Button]:
    if not is_host(settings, request):  # the button shows to every visitor; the event is callable by anyone
        raise gr.Error(who_may_switch(settings), print_exception=False)
    if status.switch_to_real():
        gr.Info(f"Switched: answers now come from {status.real.space}.")
    else:
        gr.Warning("The real Space does not answer right now; staying on the stand-in.")
    return page_status(status)


def in_use(status: SpaceStatus, choices: list[tuple[str, str]]) -> str | None:
    """The picker's value: the Space in use when the list holds it (not the stand-in's)."""
    space = status.holder.config.space
    return space if status.mode not in (Mode.STANDIN, Mode.FALLBACK) and any(v == space for _, v in choices) else None


def picker_update(status: SpaceStatus, fresh: bool = False) -> gr.Dropdown:
    choices = status.choices(fresh)
    return gr.Dropdown(choices=choices, value=in_use(status, choices))


def picker_for(status: SpaceStatus, settings: AppSettings, request: gr.Request
               ) -> tuple[gr.Dropdown, gr.Button, gr.Button, str]:
    """The picker as this visitor may use it: the host picks and switches; anyone else sees the list, locked,
    and a line that says who may switch."""
    host = is_host(settings, request)
    note = "" if host else who_may_switch(settings)
    return (gr.Dropdown(choices=status.choices(), value=in_use(status, status.choices()), interactive=host),
            gr.Button(interactive=host), gr.Button(interactive=host), note)


def pick_space(status: SpaceStatus, space: str | None, settings: AppSettings, request: gr.Request
               ) -> tuple[str, gr.Button, gr.Dropdown]:
    if not is_host(settings, request):  # the route is callable by anyone who can open the page: check here
        raise gr.Error(who_may_switch(settings), print_exception=False)
    done, sentence = status.switch_to(str(space or ""))
    (gr.Info if done else gr.Warning)(sentence)
    return (*page_status(status), picker_update(status))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)  # else two lines a tool call ("Processing request of type")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the stand-in child and the bridge close too
    settings = parse_settings(argv)
    if settings.turn_parts:  # the benchmark's breakdown of each turn (mirror/chat/handlers.py TurnRecord)
        logging.getLogger("mirror.chat.handlers.parts").setLevel(logging.DEBUG)
    try:  # before anything starts: a replica that cannot reach the shared budget must not serve
        budget = make_budget(settings)
    except StoreUnreachable as exc:
        raise SystemExit(f"* {exc}") from None
    # before the stand-in starts: it shares the upload folder; all removed at exit
    work = WorkDir.create(settings.temp_dir)
    janitor = Janitor(work, settings.cache_sweep_every_s, settings.cache_max_age_s, settings.partial_upload_s).start()
    status = SpaceStatus.start(settings)
    try:
        mirror = build_demo(settings, status, Guard(settings), budget, work)
        janitor.keep = lambda: examples_in_cache(mirror.demo)

        def shutdown() -> None:
            mirror.chat.cancel_all_from_other_thread()
            status.holder.close_from_other_thread(timeout=2.0)

        serve(mirror.demo, settings, on_shutdown=shutdown, css=CSS, head=HEAD, guard=mirror.guard,
              routes=openai_routes(settings, mirror.runner, work))
    finally:
        janitor.stop()
        status.stop()
        work.remove()


if __name__ == "__main__":
    main()

"""Serving the app: logins, the share link (never public without a login) and a clean shutdown."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable

import gradio as gr
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from ..apis.mcp_gate import McpGate
from ..apis.mcp_tools import announce, fit_mcp_server
from ..apis.openai_api import api_settings
from ..door import gradio_internals, slow_clients
from ..door.guard import Guard
from ..door.middleware import Door
from ..settings import AppSettings

log = logging.getLogger(__name__)
EXIT_DEADLINE_S = 6.0  # after SIGTERM / Ctrl+C the process is gone within this, whatever still hangs


def logins_for(settings: AppSettings) -> tuple[list[tuple[str, str]], bool]:
    """The logins to require, and whether they were made up here (``--share`` without ``--auth``)."""
    if settings.auth:
        return list(settings.auth), False
    if settings.share:
        return [("phi4", secrets.token_urlsafe(12))], True
    return [], False


def announce_generated(login: tuple[str, str]) -> None:
    print("\n* --share without --auth: the share link needs this login (shown only once):\n"
          f"*     user: {login[0]}\n*     password: {login[1]}\n", flush=True)


def serve(demo: gr.Blocks, settings: AppSettings, on_shutdown: Callable[[], None], css: str,
          guard: Guard | None = None, routes: list[BaseRoute] | None = None, head: str | None = None) -> None:
    """Launch, report the share link's fate in plain words, block until Ctrl+C or SIGTERM, then shut down:
    ``on_shutdown`` (cancel running turns, close the bridge), then the server, all within ``EXIT_DEADLINE_S``.

    The door (``mirror.door.middleware.Door``) sits in front of every route; gradio's run-history feature is off (its
    routes would act with the host's HF token for anyone); one uploaded file may weigh at most what the bridge can send;
    gradio keeps per-session state for at most ``max_visitors`` sessions. ``routes`` go before gradio's own (the
    OpenAI-compatible API's ``/v1``). With ``--mcp``, gradio's MCP server is on, behind the key check
    (``mirror.apis.mcp_gate``), and lists only the app's tools (``mirror.apis.mcp_tools``)."""
    logins, generated = logins_for(settings)
    if generated:
        announce_generated(logins[0])
    guard = guard or Guard(settings)
    if guard.blocks is None:  # a caller that built no guard of its own: the door still knows the page
        guard.attach(demo, None)
    slow_clients.install(settings.slow_client_s)
    middleware = [Middleware(Door, guard=guard)]
    if settings.mcp:
        middleware.append(Middleware(McpGate, api=api_settings(settings)))
    try:
        demo.queue(default_concurrency_limit=settings.concurrency_total, max_size=settings.queue_max_size)
        gradio_internals.slow_the_idle_poll(demo)
        gradio_internals.sign_block_classes(demo)
        demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                    auth=logins or None, auth_message="Log in to chat with Phi-4-multimodal.",
                    prevent_thread_lock=True, show_error=False, footer_links=["api", "gradio"], css=css, head=head,
                    run_history=False, max_file_size=settings.max_upload_bytes, max_threads=queue_slots(settings),
                    state_session_capacity=settings.max_visitors,
                    enable_monitoring=False,  # gradio's traffic dashboard: the host has the Usage tab
                    mcp_server=settings.mcp, app_kwargs={"middleware": middleware, "routes": list(routes or [])})
        if settings.mcp:
            fit_mcp_server(demo, api_settings(settings))
            announce(demo.local_url or "", demo.share_url, api_settings(settings))
        slow_clients.installed(getattr(demo, "server", None))
        if settings.share and not demo.share_url:
            print(f"* The share link could not be created (no tunnel: no internet, or gradio's frpc helper is "
                  f"missing). The app keeps serving locally at {demo.local_url}", flush=True)
        elif settings.share:
            print(f"* Shared at {demo.share_url} (login required)", flush=True)
        gradio_internals.reuse_block_configs(demo)  # the page as launched: a new session's config 8 -> 0.2 ms
        gradio_internals.skip_queue_analytics(demo)  # no pandas summary of every event at each event's end
        freeze_startup_objects()
        demo.block_thread()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        watchdog = threading.Timer(EXIT_DEADLINE_S, _exit_now)
        watchdog.daemon = True
        watchdog.start()
        on_shutdown()
        closer = threading.Thread(target=_close, args=(demo,), daemon=True)
        closer.start()
        closer.join(timeout=2.0)  # uvicorn waits for open streams; whatever is left dies with the process


def queue_slots(settings: AppSettings) -> int:
    """Events gradio's queue runs at once, whatever their step (its ``max_threads``, 40 by default): every chat
    turn ``--concurrency`` allows, as many quick steps of the page beside them (a turn's user step, the badge), and
    the QA tab's runs. Why: gradio counts every running event against this one number before any step's own limit,
    so at its default of 40 a 41st turn waited for a whole reply to end however high ``--concurrency`` was set."""
    return max(40, 2 * settings.concurrency_total + 8)


def freeze_startup_objects() -> None:
    """Leave what gradio, fastapi and pydantic built at start (modules, schemas, the page's config: most of the
    process's objects) out of Python's garbage collector from now on. Why: each full collection walked all of them,
    60 to 180 ms each, a few times a turn in a chat of 200 messages (whose turns make many objects, so collections
    come often): a third of that turn's CPU here. Garbage made at start is collected first; the collector still
    looks at everything made afterwards (Python's own advice for long-lived servers: ``gc.freeze``)."""
    gc.collect()
    gc.freeze()
    # Python runs a full collection when the objects promoted since the last one reach a quarter of those it
    # then kept: still counting the frozen ones, it would wait for hundreds of thousands, and cyclic garbage
    # (an abandoned stream's generator and what it holds) would linger that long. One more, cheap now, resets
    # the count to what is left unfrozen.
    gc.collect()


def _close(demo: gr.Blocks) -> None:
    try:
        demo.close(verbose=False)
    except Exception:  # noqa: BLE001
        print("* closing the server failed", file=sys.stderr)


def _exit_now() -> None:
    print("* shutdown took too long; exiting now", file=sys.stderr, flush=True)
    os._exit(0)

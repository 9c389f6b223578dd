"""Serving the app: logins, the share link (never public without a login) and a clean shutdown."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable

import gradio as gr

from .settings import Settings


def logins_for(settings: Settings) -> tuple[list[tuple[str, str]], bool]:
    """The logins to require, and whether they were made up here (``--share`` without ``--auth``)."""
    if settings.auth:
        return list(settings.auth), False
    if settings.share:
        return [("phi4", secrets.token_urlsafe(12))], True
    return [], False


def announce_generated(login: tuple[str, str]) -> None:
    print("\n* --share without --auth: the share link needs this login (shown only once):\n"
          f"*     user: {login[0]}\n*     password: {login[1]}\n", flush=True)


def serve(demo: gr.Blocks, settings: Settings, on_shutdown: Callable[[], None], css: str) -> None:
    """Launch, report the share link's fate in plain words, block until Ctrl+C, then shut down cleanly."""
    logins, generated = logins_for(settings)
    if generated:
        announce_generated(logins[0])
    try:
        demo.queue(default_concurrency_limit=settings.concurrency_total, max_size=settings.queue_max_size)
        demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                    auth=logins or None, auth_message="Log in to chat with Phi-4-multimodal.",
                    prevent_thread_lock=True, show_error=False, footer_links=["api", "gradio"], css=css)
        if settings.share and not demo.share_url:
            print(f"* The share link could not be created (no tunnel: no internet, or gradio's frpc helper is "
                  f"missing). The app keeps serving locally at {demo.local_url}", flush=True)
        elif settings.share:
            print(f"* Shared at {demo.share_url} (login required)", flush=True)
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        on_shutdown()
        try:
            demo.close()
        except Exception:  # noqa: BLE001
            print("* closing the server failed", file=sys.stderr)

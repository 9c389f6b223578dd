"""Phi-4-multimodal as tools for agents: the app's MCP server (``python app.py --mcp``).

Why gradio's own MCP layer: ``launch(mcp_server=True)`` already speaks the MCP streamable HTTP transport at
``/gradio_api/mcp/`` and turns a typed, documented function (``gr.api``) into a tool whose schema and description
the agent reads. The tools here are such functions, and nothing else of the app is a tool (``fit_mcp_server``:
the page's ``/chat``, the QA tab's and the Space picker's endpoints would otherwise be listed too).

Why each call is a turn of ``AppRunner`` (the ``/v1`` runner): a tool call is one turn of the app like a ``/v1``
request, so it obeys the same rules with no code of its own for them: the caller is its key (``key:N``; without
keys, its address), with the same ``--turns-per-client`` cap, per-visitor budget, ``--concurrency`` count, usage
record (source ``mcp``), error sentences and shutdown. Each call is its own conversation (no memory between calls).

Why ``queue=False``: gradio then runs the tool in the MCP request itself (its headers, its client address), so the
key check sees the caller's ``Authorization`` header, and a client that goes away cancels the call's task, which
closes the turn and cancels the job on the Space. A queued tool would go through a loopback gradio client instead.

Images and audio are strings: a base64 ``data:`` URL, or an http(s) URL that the app fetches only with
``--fetch-image-urls`` and by the ``/v1`` rules (``phi4_bridge.openai_api.fetch``: public addresses only, size and time
limits). Gradio's file parameters would download any URL by themselves, so none is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import gradio as gr
from gradio.events import api as gradio_api

from phi4_bridge import Done, Phi4Error, Queued, Started, TextDelta
from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.messages import ApiTurn, Attachment, url_attachment
from phi4_bridge.openai_api.server import ApiSettings, Caller, caller_of, materialize

from ..chat.chat_values import queue_words
from ..chat.handlers import log_failure
from .openai_api import AppRunner

log = logging.getLogger(__name__)
TOOLS = ("ask_phi4", "describe_image", "transcribe_audio")
MCP_PATH = "/gradio_api/mcp/"
UNEXPECTED = "Something went wrong in this app while answering; it has been logged. Try the call again."


class ToolFailure(Exception):
    """A tool call that failed, as the one sentence the agent reads (the MCP result's error text)."""


class Phi4Tools:
    """The tools' shared work: one turn through the app's runner, its files written to a folder of its own."""

    def __init__(self, runner: AppRunner, api: ApiSettings) -> None:
        self.runner, self.api = runner, api

    def files(self, images: list[str] | None, audio: str | None) -> list[Attachment]:
        """The call's files, in the order sent: images, then audio; refused by argument name when malformed."""
        found = [url_attachment(url, f"images[{i}]", f"images[{i}]", self.api.fetch_image_urls)
                 for i, url in enumerate(images or []) if url.strip()]
        if audio and audio.strip():
            found.append(url_attachment(audio, "audio", "audio", self.api.fetch_image_urls, kind="audio"))
        return found

    async def ask(self, request: Any, prompt: str, images: list[str] | None = None, audio: str | None = None
                  ) -> str:
        """One turn for whoever sent ``request``; the reply text, or ``ToolFailure`` with the sentence."""
        try:
            caller = caller_of(request, self.api)  # the gate refused a bad key already; this covers /gradio_api/run
        except ApiError as exc:
            raise ToolFailure(exc.message) from None
        try:
            return await self._turn(caller, prompt, self.files(images, audio))
        except ApiError as exc:  # a malformed file, a URL not fetched
            log.info("MCP call of %s refused: %s", caller.name, exc.message)
            raise ToolFailure(exc.message) from None
        except Phi4Error as exc:
            log_failure(exc)
            raise ToolFailure(str(exc)) from None
        except (ToolFailure, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("unexpected failure in an MCP tool call")
            raise ToolFailure(UNEXPECTED) from None

    async def _turn(self, caller: Caller, prompt: str, attachments: list[Attachment]) -> str:
        """The files written (or fetched) into a folder of the turn's own, the turn run, the folder removed.
        Cancelling this (the client went away) closes the runner's events, which cancels the job on the Space."""
        folder = tempfile.mkdtemp(prefix="phi4-mcp-", dir=self.api.temp_dir)
        try:
            paths, _ = await materialize(ApiTurn(prompt, attachments, [], attachments), folder, self.api.limits)
            reply, progress = "", progress_reporter()
            async with aclosing(self.runner.events(caller, prompt, paths, [], {}, source="mcp")) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        reply += event.text
                    elif isinstance(event, Done):
                        reply = event.text
                    elif isinstance(event, Queued) and progress is not None:
                        await progress(f"In the Space's queue: {queue_words(event)}")
                    elif isinstance(event, Started) and progress is not None:
                        await progress("Phi-4 is answering")
            if not reply.strip():
                raise ToolFailure("The model sent an empty reply; try again.")
            return reply
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)


def progress_reporter() -> Callable[[str], Awaitable[None]] | None:
    """Progress notifications for the MCP call being served, when its client asked for them (a progress token):
    where the turn waits in the Space's queue, then that Phi-4 answers. A long queue on the real Space then shows
    in the agent (and keeps alive a client whose timeout restarts on progress). None outside an MCP call."""
    try:
        from mcp.server.lowlevel.server import request_ctx  # the SDK's context of the request it serves
        context = request_ctx.get()
    except (ImportError, LookupError):
        return None
    token = context.meta.progressToken if context.meta is not None else None
    if token is None:
        return None
    step = 0

    async def report(message: str) -> None:
        nonlocal step
        step += 1
        await context.session.send_progress_notification(token, step, message=message,
                                                         related_request_id=str(context.request_id))
    return report


def register_tools(tools: Phi4Tools) -> None:
    """Add the tools to the Blocks being built (inside ``with gr.Blocks()``). The docstrings are what the agent
    reads: gradio's MCP layer makes them the tools' descriptions and the ``Args`` the parameters'."""

    async def ask_phi4(prompt: str, images: list[str] | None = None, audio: str | None = None,
                       request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Ask Microsoft's Phi-4-multimodal (a vision and speech model) one question about images and/or a
        recording, or about text alone, and get its answer as text. Each call is a fresh conversation: include
        everything the model needs in the prompt. Images (PNG, JPEG, WebP, GIF, BMP; at most 10 MB) and audio (WAV,
        MP3, FLAC, OGG, M4A, WebM; at most 25 MB) are each given as a base64 data: URL (data:image/png;base64,...)
        or, when this server allows it, an http(s) URL. The model runs on a shared free GPU: a call can wait in a
        queue, and fails with a sentence saying what to do (e.g. when the GPU quota is used up).

        Args:
            prompt: The question or instruction for the model, e.g. "What does this screenshot show?".
            images: Images to look at, each a data: URL (data:image/png;base64,...) or an http(s) URL.
            audio: One recording to listen to, a data: URL (data:audio/wav;base64,...) or an http(s) URL.

        Returns:
            The model's answer.
        """
        return await tools.ask(request, prompt, images, audio)

    async def describe_image(image: str, question: str = "Describe this image in detail.",
                             request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Describe one image (a screenshot, photo, chart or scanned page) with Microsoft's Phi-4-multimodal, or
        answer a question about it. The image is a base64 data: URL (data:image/png;base64,...) or, when this
        server allows it, an http(s) URL; PNG, JPEG, WebP, GIF or BMP, at most 10 MB.

        Args:
            image: The image, as a data: URL (data:image/png;base64,...) or an http(s) URL.
            question: What to ask about the image; by default a detailed description.

        Returns:
            The model's description or answer.
        """
        return await tools.ask(request, question, [image], None)

    async def transcribe_audio(audio: str, instruction: str = "Transcribe this audio clip word for word.",
                               request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Transcribe a recording (speech to text) with Microsoft's Phi-4-multimodal, or follow another instruction
        about it (translate, summarise). The audio is a base64 data: URL (data:audio/wav;base64,...) or, when this
        server allows it, an http(s) URL; WAV, MP3, FLAC, OGG, M4A or WebM, at most 25 MB.

        Args:
            audio: The recording, as a data: URL (data:audio/wav;base64,...) or an http(s) URL.
            instruction: What to do with it; by default a word-for-word transcript.

        Returns:
            The transcript (or what the instruction asked for).
        """
        return await tools.ask(request, instruction, None, audio)

    for fn in (ask_phi4, describe_image, transcribe_audio):
        gradio_api(fn, api_name=fn.__name__, queue=False)


def fit_mcp_server(demo: gr.Blocks, api: ApiSettings) -> None:
    """After launch, gradio's MCP server made to fit the app: it lists and runs only ``TOOLS`` (gradio makes
    every public endpoint a tool), and reads a request of up to ``api.max_body_bytes`` as ``/v1`` does (the MCP
    SDK's own limit, 4 MiB, would refuse a screenshot of a few MB as a data: URL)."""
    from mcp.server.transport_security import RequestBodyLimitMiddleware

    server = getattr(demo, "mcp_server_obj", None)
    if server is None:
        raise RuntimeError("gradio did not start its MCP server")
    server.tool_to_endpoint = {name: endpoint for name, endpoint in server.tool_to_endpoint.items()
                               if endpoint.lstrip("/") in TOOLS}
    manager = server.manager
    manager.max_request_body_size = api.max_body_bytes
    manager.asgi_app = RequestBodyLimitMiddleware(manager._handle_request, api.max_body_bytes)


def client_config(url: str, with_key: bool) -> str:
    """A config block for an MCP client (Cursor's ``mcp.json``; VS Code's takes the same under ``servers``),
    with a placeholder where the key goes: a key is never printed."""
    server: dict[str, Any] = {"url": url}
    if with_key:
        server["headers"] = {"Authorization": "Bearer <your API key>"}
    return json.dumps({"mcpServers": {"phi4-mirror": server}})


def announce(local_url: str, share_url: str | None, api: ApiSettings) -> None:
    """The start-up lines: the MCP address, the tools and a config to paste."""
    url = (share_url or local_url).rstrip("/") + MCP_PATH
    if api.require_key and not api.keys:
        print(f"* MCP at {url} refuses every call: behind a login it needs --api-key KEY", flush=True)
        return
    print(f"* MCP tools ({', '.join(TOOLS)}) at {url}"
          + (" (clients send Authorization: Bearer KEY)" if api.keys else ""), flush=True)
    print(f"* MCP client config: {client_config(url, bool(api.keys))}", flush=True)

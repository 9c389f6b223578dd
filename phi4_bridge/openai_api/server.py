"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions`` as a FastAPI app.

    api = build_api(runner, ApiSettings(keys=("secret",)))   # mount it at /v1 (the app does, on gradio's server)

Why a runner: the same routes serve the app (turns go through the app's ``ChatService``, so they share its
per-client limits and its shutdown) and ``python -m phi4_bridge serve`` (``BridgeRunner``: the bridge alone).

A turn runs in its own task (``Answer``) that reads the bridge's events into a queue, so the response can wait
for the Space without tying the turn to the connection: when the client goes away (the stream's disconnect, or
the connection of a non-streamed request closing), that task is cancelled and the bridge cancels the job on the
Space. A streamed answer waits up to ``header_wait_s`` for the first text before it commits to HTTP 200, so a
quota, a refused file or a sleeping Space met at once is an HTTP error the SDK raises as its own exception
class; after that, a failure is a ``data: {"error": ...}`` event, then ``data: [DONE]``. While queued, the
stream carries ``: ping`` comments.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..chain import Option
from ..config import Limits
from ..errors import InputRejected, Phi4Error, RemoteError
from ..events import Done, Event, Queued, TextDelta
from .bounds import check_parsed, check_raw
from .errors import ApiError, bad_request, from_bridge, unauthorized, unknown_model
from .fetch import FetchRefused, fetch
from .messages import ApiTurn, check_request, extension_of, param_for, requested_options, to_turn, with_paths
from .schema import (
    MODEL_ALIASES,
    MODEL_ID,
    ChatRequest,
    chunk,
    completion,
    model_card,
    models_list,
    usage,
    usage_chunk,
)

log = logging.getLogger(__name__)
END = object()
_PUMPS: set[asyncio.Task[None]] = set()  # turns still cleaning up after their client left


@dataclass(frozen=True)
class Caller:
    """Who sent a request: ``name`` is ``key:N`` (the Nth API key; never the key itself) or ``addr:HOST``."""

    name: str
    host: str
    ip_token: str | None = field(default=None, repr=False)


class Runner(Protocol):
    def events(self, caller: Caller, prompt: str, files: list[str], history: list[dict[str, Any]],
               options: dict[str, Any]) -> AsyncIterator[Event]: ...

    async def options(self) -> Mapping[str, Option]: ...


@dataclass(frozen=True)
class ApiSettings:
    keys: tuple[str, ...] = field(default=(), repr=False)
    require_key: bool = False  # with a login (--auth, --share) the API never answers without a key
    fetch_image_urls: bool = False
    limits: Limits = field(default_factory=Limits)
    max_body_bytes: int = 64 * 1024 * 1024
    ping_s: float = 10.0
    header_wait_s: float = 5.0
    temp_dir: str | None = None  # where a request's files are written (None: the system's temporary folder)


def caller_of(request: Request, settings: ApiSettings) -> Caller:
    """The caller behind the ``Authorization: Bearer KEY`` header, or 401."""
    host = request.client.host if request.client else "unknown"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    ip_token = request.headers.get("x-ip-token") or None
    if settings.keys:
        for index, key in enumerate(settings.keys, 1):
            if given and hmac.compare_digest(given.encode(), key.encode()):
                return Caller(f"key:{index}", host, ip_token)
        raise unauthorized("Incorrect API key provided." if given else
                           "No API key: send it as 'Authorization: Bearer KEY' (api_key= in the openai SDK).")
    if settings.require_key:
        raise unauthorized("This server answers only with an API key, and its host set none: start it with "
                           "--api-key KEY (or PHI4_API_KEYS) to use the API behind a login.")
    return Caller(f"addr:{host}", host, ip_token)


async def read_body(request: Request, limit: int) -> bytearray:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"The request is {int(length) / 1e6:.0f} MB; the most this server reads is "
                       f"{limit / 1e6:.0f} MB.", code="request_too_large")
    body = bytearray()  # one buffer, not a list of pieces joined into a second copy
    async for piece in request.stream():
        if len(body) + len(piece) > limit:
            raise ApiError(413, f"The request is larger than {limit / 1e6:.0f} MB, the most this server reads.",
                           code="request_too_large")
        body += piece
    return body  # not ``bytes(body)``: that would be a second copy of up to ``limit`` bytes


def parse_request(body: bytes | bytearray) -> ChatRequest:
    """The request, or a 400 naming the first field that is wrong (``messages[0].content``)."""
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if not str(p).startswith(("function-", "str", "list["))]
        param = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc).lstrip(".") or None
        if first.get("type") == "json_invalid":
            raise bad_request("The request body is not valid JSON.", None, "invalid_json") from None
        raise bad_request(f"{param or 'request'}: {first.get('msg', 'invalid')}.", param) from None


async def materialize(turn: ApiTurn, folder: str, limits: Limits) -> tuple[list[str], list[dict[str, Any]]]:
    """Write (or fetch) every attachment into ``folder``: the new turn's file paths, and the history naming them."""
    paths = []
    for attachment in turn.attachments:
        if attachment.url is not None:
            most = limits.max_audio_bytes if attachment.kind == "audio" else limits.max_image_bytes
            try:
                attachment.data, mime = await fetch(attachment.url, most)
            except FetchRefused as exc:
                raise bad_request(f"{attachment.param}: not fetched: {exc}", attachment.param,
                                  "image_url_refused") from None
            attachment.name = f"{attachment.name}.{extension_of(mime) if '/' in mime else 'img'}"
        path = os.path.join(folder, attachment.name)
        await asyncio.to_thread(_write, path, attachment.data or b"")
        paths.append(path)
    first_new = len(turn.attachments) - len(turn.files)  # the new turn's files come last (``to_turn``)
    return paths[first_new:], with_paths(turn.history, paths)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)


class Answer:
    """One turn running in its own task; its events (or its error) arrive through a queue."""

    def __init__(self, events: AsyncIterator[Event], folder: str) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.folder = folder
        self.task = asyncio.create_task(self._pump(events))
        _PUMPS.add(self.task)
        self.task.add_done_callback(_PUMPS.discard)

    async def _pump(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                self.queue.put_nowait(event)
            self.queue.put_nowait(END)
        except Phi4Error as exc:
            self.queue.put_nowait(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the client as a 500, logged here
            log.exception("unexpected failure in an API turn")
            self.queue.put_nowait(exc)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            await asyncio.to_thread(shutil.rmtree, self.folder, True)

    async def next(self) -> Any:
        return await self.queue.get()

    def stop(self) -> None:
        """The client left: cancel the turn (the bridge cancels the job on the Space)."""
        self.task.cancel()


def build_api(runner: Runner, settings: ApiSettings) -> FastAPI:
    """The ``/v1`` app (mount it at ``/v1``)."""
    api = FastAPI(title="Phi-4 Mirror OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    started = int(time.time())

    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @api.get("/models")
    async def models(request: Request) -> JSONResponse:
        caller_of(request, settings)
        return JSONResponse(models_list(started))

    @api.get("/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> JSONResponse:
        caller_of(request, settings)
        if model_id.lower() not in MODEL_ALIASES:
            raise unknown_model(model_id, MODEL_ID)
        return JSONResponse(model_card(started))

    @api.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        caller = caller_of(request, settings)
        body = await read_body(request, settings.max_body_bytes)
        check_raw(body, settings.limits)  # counts and sizes before JSON decoding (issue 27)
        req = parse_request(body)
        del body
        if req.model.lower() not in MODEL_ALIASES:
            raise unknown_model(req.model, MODEL_ID)
        check_request(req)
        check_parsed(req, settings.limits)  # ... and before any file is decoded
        folder = tempfile.mkdtemp(prefix="phi4-openai-", dir=settings.temp_dir)
        try:
            # decoding up to 40 files of base64 is real work: off the event loop that serves everyone
            turn = await asyncio.to_thread(to_turn, req, settings.fetch_image_urls)
            files, history = await materialize(turn, folder, settings.limits)
            options = await _options(runner, req)
            params = {name: param for name, (param, _) in requested_options(req).items()}
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        answer = Answer(runner.events(caller, turn.prompt, files, history, options), folder)
        fail = _failure(caller, turn, len(req.messages) - 1, params)
        if not req.stream:
            return await _whole(request, answer, req, turn, fail)
        pending: list[Any] = []
        deadline = time.monotonic() + settings.header_wait_s  # in all, however many queue updates come first
        try:
            while True:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):  # not wait_for: see protocol
                    item = await answer.next()
                if isinstance(item, BaseException):
                    raise fail(item)
                pending.append(item)
                if item is END or isinstance(item, TextDelta | Done):
                    break
        except TimeoutError:
            pass  # still queued: commit to the stream now, pings keep it open
        except BaseException:
            answer.stop()
            raise
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return EventSourceResponse(_stream(answer, pending, req.model, turn, include_usage, fail),
                                   ping=settings.ping_s, ping_message_factory=lambda: ServerSentEvent(comment="ping"))

    return api


async def _options(runner: Runner, req: ChatRequest) -> dict[str, Any]:
    wanted = requested_options(req)
    if not wanted:
        return {}
    try:
        offered = await runner.options()
    except Phi4Error as exc:
        raise from_bridge(exc) from None
    for name, (param, _) in wanted.items():
        if name not in offered:
            raise bad_request(f"{param}: this Space has no {name} control, so it cannot be set; leave {param!r} out.",
                              param, "unsupported_parameter")
    return {name: value for name, (_, value) in wanted.items()}


def _failure(caller: Caller, turn: ApiTurn, last: int, params: dict[str, str]
             ) -> Callable[[BaseException], ApiError]:
    """The API error for a failure of this turn, naming the request field when the bridge's sentence does."""
    def fail(exc: BaseException) -> ApiError:
        if not isinstance(exc, Phi4Error):
            return ApiError(500, "Something went wrong in this server while answering; it has been logged.",
                            type="api_error")
        param = None
        if isinstance(exc, InputRejected) and exc.reason == "bad_option":
            param = next((p for n, p in params.items() if n in str(exc)), None)
            error = bad_request(f"{param}: {exc}" if param else str(exc), param, "bad_option")
            log.info("API turn of %s refused: %s", caller.name, error.message)
            return error
        if isinstance(exc, InputRejected) or type(exc) is RemoteError:  # the Space's own words (not WorkerError)
            param = param_for(str(exc), turn, last)
        error = from_bridge(exc, param)
        log.info("API turn of %s failed: %s (%d): %s", caller.name, type(error).__name__ if error.status >= 500
                 else _KIND.get(error.status, "Error"), error.status, error.message)
        return error
    return fail


_KIND = {400: "BadRequest", 429: "RateLimit"}


async def _whole(request: Request, answer: Answer, req: ChatRequest, turn: ApiTurn,
                 fail: Callable[[BaseException], ApiError]) -> Response:
    """A non-streamed answer; a client that closes the connection first cancels the turn."""
    async def collect() -> str:
        reply = ""
        while True:
            item = await answer.next()
            if item is END:
                return reply
            if isinstance(item, BaseException):
                raise fail(item)
            if isinstance(item, TextDelta):
                reply += item.text
            elif isinstance(item, Done):
                reply = item.text

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    work, watch = asyncio.create_task(collect()), asyncio.create_task(gone())
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
            answer.stop()
    if not work.done() or work.cancelled():
        log.info("an API client left before its answer; the turn was cancelled")
        return Response(status_code=499)
    reply = work.result()
    return JSONResponse(completion(_id(answer), req.model, reply, "stop", usage(turn.prompt_chars, reply)))


def _id(answer: Answer) -> str:
    return f"chatcmpl-{id(answer):x}{int(time.time() * 1000):x}"


async def _stream(answer: Answer, pending: list[Any], model: str, turn: ApiTurn, include_usage: bool,
                  fail: Callable[[BaseException], ApiError]) -> AsyncIterator[ServerSentEvent]:
    cid, created, reply = _id(answer), int(time.time()), ""

    def data(value: Any) -> ServerSentEvent:
        return ServerSentEvent(data=json.dumps(value, ensure_ascii=False))

    try:
        yield data(chunk(cid, created, model, {"role": "assistant", "content": ""}, with_usage=include_usage))
        while True:
            item = pending.pop(0) if pending else await answer.next()
            if isinstance(item, Queued):
                yield ServerSentEvent(comment="ping")
            elif isinstance(item, TextDelta) or (isinstance(item, Done) and item.text.startswith(reply)):
                text = item.text if isinstance(item, TextDelta) else item.text[len(reply):]
                reply += text
                if text:
                    yield data(chunk(cid, created, model, {"content": text}, with_usage=include_usage))
            elif item is END:
                yield data(chunk(cid, created, model, {}, "stop", with_usage=include_usage))
                if include_usage:
                    yield data(usage_chunk(cid, created, model, usage(turn.prompt_chars, reply)))
                break
            elif isinstance(item, BaseException):
                yield data(fail(item).body())
                break
        yield ServerSentEvent(data="[DONE]")
    finally:
        answer.stop()  # no await: a cancelled stream may not wait; the turn's task cleans up on its own

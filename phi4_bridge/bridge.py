"""``Phi4Bridge``: one chat turn with the Phi-4 Space, as a ``Job`` that streams events.

    async with Phi4Bridge(BridgeConfig.from_env()) as bridge:
        conversation = bridge.conversation()
        async with bridge.submit("What is in this picture?", files=["cat.png"], conversation=conversation) as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    print(event.text, end="")

One ``aiohttp.ClientSession`` per bridge; tokens are shared by every turn; uploads are remembered per
conversation. Leaving a job early (break, Stop, task cancelled) cancels it on the Space.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from . import protocol
from .config import BridgeConfig
from .errors import Phi4Error, ProtocolError, SpaceUnavailable, StreamTimeout, TokenRejected
from .events import Done, Event, Started, TextDelta
from .media import MediaFile
from .messages import check_prompt, parts, to_space, user_turn
from .stream import ReplyStream, coalesce
from .token import TokenProvider
from .upload import inspect_all, upload

log = logging.getLogger(__name__)

FilePath = str | os.PathLike[str]


@dataclass
class Conversation:
    """One remote session: its session hash, what the Space already holds of its files, and (for callers that
    do not keep their own) its history in the local chatbot's shape."""

    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    history: list[dict[str, Any]] = field(default_factory=list)
    uploaded: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    inspected: dict[tuple[str, int, int], MediaFile] = field(default_factory=dict, repr=False)


class Job:
    """A turn in progress: iterate it for events, ``cancel()`` it, read ``status`` and ``reply``."""

    def __init__(self, bridge: Phi4Bridge, prompt: str, files: Sequence[FilePath],
                 history: Sequence[Mapping[str, Any]] | None, conversation: Conversation,
                 ip_token: str | None) -> None:
        self._bridge = bridge
        self.conversation = conversation
        self.status = "pending"  # pending | queued | running | done | failed | cancelled
        self.reply = ""
        self.error: Phi4Error | None = None
        self._agen = self._run(prompt, [os.fspath(f) for f in files], history, ip_token)
        self._remote: tuple[str, protocol.Endpoints, dict[str, str]] | None = None

    def __aiter__(self) -> Job:
        return self

    async def __anext__(self) -> Event:
        return await self._agen.__anext__()

    async def __aenter__(self) -> Job:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._agen.aclose()

    async def cancel(self) -> None:
        """Stop the turn here and on the Space."""
        if self.status not in ("done", "failed"):
            self.status = "cancelled"
        await self.aclose()

    async def result(self) -> str:
        """Run the turn to the end and return the whole reply."""
        async for _ in self:
            pass
        return self.reply

    async def _run(self, prompt: str, files: list[str], history: Sequence[Mapping[str, Any]] | None,
                   ip_token: str | None) -> AsyncIterator[Event]:
        bridge, conv = self._bridge, self.conversation
        earlier = list(history) if history is not None else list(conv.history)
        try:
            async with aclosing(bridge._turn(self, prompt, files, earlier, ip_token)) as turn:
                async for event in turn:
                    yield event
        except Phi4Error as exc:
            self.status, self.error = "failed", exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if self.status not in ("done", "failed"):
                self.status = "cancelled"
            raise
        finally:
            if self._remote is not None:  # left before the Space finished: free its GPU slot
                event_id, ep, headers = self._remote
                await asyncio.shield(bridge._cancel(ep, conv.session_hash, event_id, headers))
        self.status = "done"
        conv.history = earlier + _local_user_turn(prompt, files) + [
            {"role": "assistant", "content": [{"type": "text", "text": self.reply}]}]


def _local_user_turn(prompt: str, files: list[str]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "file", "file": {"path": f}} for f in files]
    if prompt:
        content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


class Phi4Bridge:
    """The async client of the Phi-4 Space: use as ``async with Phi4Bridge(config) as bridge``."""

    def __init__(self, config: BridgeConfig | None = None, *, session: aiohttp.ClientSession | None = None) -> None:
        self.config = (config or BridgeConfig.from_env()).normalised()
        self._own_session = session is None
        self._session = session
        self._tokens: TokenProvider | None = None
        self._endpoints: protocol.Endpoints | None = None
        self._endpoints_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Phi4Bridge(space={self.config.space!r}, space_url={self.config.space_url!r})"

    async def __aenter__(self) -> Phi4Bridge:
        if self._session is None:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=t.request, connect=t.connect, sock_connect=t.connect),
                # Idle connections are dropped before uvicorn's 5 s keep-alive closes them under us, which would
                # fail a POST that cannot be retried (seen in the benchmark sweep as ServerDisconnectedError).
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=4.0),
                headers={"referer": f"{self.config.space_url}?__theme=light"})
        self._tokens = TokenProvider(self.config, self._session)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Use Phi4Bridge as `async with Phi4Bridge(...) as bridge:`")
        return self._session

    @property
    def tokens(self) -> TokenProvider:
        if self._tokens is None:
            raise RuntimeError("Use Phi4Bridge as `async with Phi4Bridge(...) as bridge:`")
        return self._tokens

    def conversation(self) -> Conversation:
        return Conversation()

    def submit(self, prompt: str, files: Sequence[FilePath] = (), *,
               history: Sequence[Mapping[str, Any]] | None = None, conversation: Conversation | None = None,
               ip_token: str | None = None) -> Job:
        """Start a turn. ``history`` (either chatbot shape) overrides the conversation's own; ``ip_token`` is a
        visitor's ``x-ip-token``, forwarded so their own ZeroGPU quota is used."""
        return Job(self, prompt, files, history, conversation or Conversation(), ip_token)

    async def chat(self, prompt: str, files: Sequence[FilePath] = (), **kwargs: Any) -> str:
        """One turn, the whole reply at once."""
        async with self.submit(prompt, files, **kwargs) as job:
            return await job.result()

    async def endpoints(self) -> protocol.Endpoints:
        if self._endpoints is None:
            async with self._endpoints_lock:
                if self._endpoints is None:
                    self._endpoints = await self._guard(protocol.discover(self.session, self.config))
        return self._endpoints

    async def _guard(self, coro: Any) -> Any:
        """Network failures become ``SpaceUnavailable`` with a reason a person can read."""
        try:
            return await coro
        except asyncio.TimeoutError:  # before ClientConnectionError: aiohttp's timeouts are both
            raise StreamTimeout(f"The Space at {self.config.space_url} did not answer in time "
                                f"({self.config.timeouts.request:.0f} s); it may be overloaded. Retry later.") from None
        except aiohttp.ClientConnectionError as exc:
            raise SpaceUnavailable(f"Cannot reach the Space at {self.config.space_url} "
                                   f"({type(exc).__name__}); check the network or the URL.") from None
        except aiohttp.ClientPayloadError:
            raise SpaceUnavailable("The connection to the Space broke mid-answer; retry.", state="dropped") from None
        except aiohttp.ClientError as exc:  # a garbled answer: bad status line, headers or encoding
            raise ProtocolError(f"The Space sent an answer that is not valid HTTP ({type(exc).__name__}).") \
                from None

    async def _turn(self, job: Job, prompt: str, files: list[str], history: list[Mapping[str, Any]],
                    ip_token: str | None) -> AsyncIterator[Event]:
        conv = job.conversation
        earlier = parts(history)
        check_prompt(prompt, bool(files), self.config.limits)
        started = time.perf_counter()
        earlier_files = [p.path for p in earlier if p.file is not None and p.path]
        media = await inspect_all(files, self.config, known=conv.inspected)
        previous = await inspect_all(list(dict.fromkeys(earlier_files)), self.config, new_turn=False,
                                     known=conv.inspected)
        ep = await self.endpoints()
        for attempt in (1, 2):
            token = await self._guard(self.tokens.get())
            headers = token.headers()
            if ip_token:
                headers["x-ip-token"] = ip_token
            remote = await self._guard(upload(self.session, self.config, previous + media, conv.session_hash,
                                              headers, conv.uploaded))
            uploaded_at = time.perf_counter()
            space_history = to_space(earlier, remote) + user_turn(prompt, [remote[m.path] for m in media])
            stream = self._stream(job, ep, prompt, [remote[m.path] for m in media], space_history, headers,
                                  started, uploaded_at)
            try:
                async with aclosing(stream):
                    async for event in stream:
                        yield event
                return
            except TokenRejected:
                self.tokens.invalidate(token)
                if attempt == 2 or job.reply:
                    raise
                log.info("The Space refused the ZeroGPU token; fetching a new one and retrying the turn once")

    async def _stream(self, job: Job, ep: protocol.Endpoints, prompt: str, files: list[dict[str, Any]],
                      space_history: list[dict[str, Any]], headers: dict[str, str], started: float,
                      uploaded_at: float) -> AsyncIterator[Event]:
        conv = job.conversation
        event_id = await self._guard(
            protocol.join(self.session, self.config, ep, space_history, conv.session_hash, headers))
        job._remote = (event_id, ep, headers)
        # The Space's own page also records the user's message with the user step (fn 10). Nothing the bridge needs
        # comes back from it (the whole history travels with the bot step), so it goes out once the first text is in
        # hand, off the path to the first token (it cost 12 ms of 26 there on the stand-in); a failure is only logged.
        step: asyncio.Task[None] | None = None

        def send_user_step() -> asyncio.Task[None]:
            return asyncio.create_task(self._user_step(ep, prompt, files, conv.session_hash, headers))

        job.status = "queued"
        reply = ReplyStream()
        first_text: float | None = None
        batches = protocol.events(self.session, self.config, conv.session_hash, event_id, headers)
        try:
            while True:
                try:
                    batch = await self._guard(batches.__anext__())
                except StopAsyncIteration:
                    break
                events, failure = [], None
                for message in batch:
                    try:
                        events.extend(reply.handle(message))
                    except Phi4Error as exc:
                        failure = exc
                        break
                for event in coalesce(events):
                    if isinstance(event, Started | TextDelta):
                        job.status = "running"
                    if isinstance(event, TextDelta):
                        first_text = first_text or time.perf_counter()
                        job.reply += event.text
                        if step is None:
                            step = send_user_step()
                    yield event
                if failure is not None:
                    raise failure
        finally:
            if reply.completed:
                job._remote = None  # the Space has ended this job, successfully or not: nothing to cancel
            await batches.aclose()
            if step is not None:
                if not reply.completed:
                    step.cancel()  # best effort only: leaving must not wait on it
                await asyncio.gather(step, return_exceptions=True)
        if not reply.completed:
            raise ProtocolError("The Space ended the stream without finishing the reply.")
        job.reply = reply.text
        end = time.perf_counter()
        timings = {"upload_s": uploaded_at - started, "total_s": end - started}
        if first_text is not None:
            timings["first_text_s"] = first_text - started
        yield Done(reply.text, timings)

    async def _user_step(self, ep: protocol.Endpoints, prompt: str, files: list[dict[str, Any]], session_hash: str,
                         headers: dict[str, str]) -> None:
        try:
            await self._guard(protocol.user_step(self.session, self.config, ep, prompt, files, session_hash, headers))
        except Phi4Error as exc:
            log.info("The Space's user step failed (%s); the reply does not depend on it", exc)

    async def _cancel(self, ep: protocol.Endpoints, session_hash: str, event_id: str,
                      headers: dict[str, str]) -> None:
        if self._session is not None and not self._session.closed:
            await protocol.cancel(self.session, self.config, ep, session_hash, event_id, headers)

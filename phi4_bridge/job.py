"""``Job``: one turn, owning all of its state. Iterate it for events, ``cancel()`` it, read ``status`` and ``reply``.

A turn does what the Space's own page does when a person presses Enter (see ``chain``):

1. check the message, the caller's history and the options here, before anything is sent;
2. bring the conversation to where the caller's history says it is: restore it from what this conversation
   already did (its chatbot value as the Space returned it, cut back to that turn), and replay any earlier
   turn it has not seen through the Space's own steps before its answering one (no GPU), adding each earlier
   reply in the shape the Space's chatbot gives its own;
3. upload the new files and put them where the page would: the multimodal textbox, else the chain's Image/Audio/
   File inputs; the text into the chat's text input;
4. run every step of the chain in order, each by its own queue flag, each writing its outputs into the page's
   values. The reply is what the turn adds to the chatbot, streamed from whichever steps write it; a chain that
   ends without reply text is a failure, never an empty success. The Space's own words come back when a step
   refuses the turn, and the steps after it do not run.

The conversation takes the new state only when the turn succeeds, so a failed turn can simply be sent again.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._wire import protocol
from ._wire.stream import ReplyStream, coalesce
from ._wire.upload import inspect_all, upload
from ._wire.values import apply_outputs, step_inputs
from .chain import Chain, Step, check_options
from .errors import (
    InputRejected,
    Phi4Error,
    ProtocolError,
    RemoteError,
    RouteMissing,
    SpaceUnavailable,
    TokenRejected,
    UploadRejected,
)
from .events import Done, Event, JobStatus, Started, TextDelta
from .media import MediaFile
from .messages import FileData, TextboxValue, Turn, chat_length, check_history, check_prompt, with_reply
from .space_config import fetch_config

if TYPE_CHECKING:
    from .bridge import Conversation, Phi4Bridge

log = logging.getLogger(__name__)

TurnKey = tuple[Any, ...]


def turn_key(text: str, files: Sequence[MediaFile], reply: str) -> TurnKey:
    """What identifies a turn done: its text, its files' bytes and the reply (hashed: the chat already holds
    the texts once)."""
    words = f"{text.strip()}\0{reply.strip()}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(words).hexdigest(), tuple(m.sha256 for m in files)


class Job:
    """A turn in progress (see the module docstring)."""

    def __init__(self, bridge: Phi4Bridge, prompt: str, files: list[str], history: Sequence[Any] | None,
                 conversation: Conversation, ip_token: str | None, options: dict[str, Any]) -> None:
        self._bridge = bridge
        self.conversation = conversation
        self.prompt, self.files, self.history = prompt, files, history
        self.ip_token, self.options = ip_token, options
        self.status = JobStatus.PENDING
        self.reply = ""
        self.error: Phi4Error | None = None
        self._remote: tuple[str, int, dict[str, str]] | None = None  # a queued step in flight: cancel it on exit
        self._agen = self._run()

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
        if self.status not in (JobStatus.DONE, JobStatus.FAILED):
            self.status = JobStatus.CANCELLED
        await self.aclose()

    @property
    def on_space(self) -> bool:
        """Whether a queued step of this turn is still running on the Space (what Stop would cancel there)."""
        return self._remote is not None

    async def result(self) -> str:
        """Run the turn to the end and return the whole reply."""
        async for _ in self:
            pass
        return self.reply

    async def _run(self) -> AsyncGenerator[Event, None]:
        try:
            async with aclosing(self._turn()) as turn:
                async for event in turn:
                    yield event
        except RouteMissing as exc:
            gone = await self._space_gone()
            self.status, self.error = JobStatus.FAILED, gone or exc
            if gone is not None:
                raise gone from exc
            raise
        except Phi4Error as exc:
            self.status, self.error = JobStatus.FAILED, exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if self.status not in (JobStatus.DONE, JobStatus.FAILED):
                self.status = JobStatus.CANCELLED
            raise
        finally:
            if self._remote is not None:  # left before the Space finished: free its GPU slot
                event_id, fn, headers = self._remote
                await asyncio.shield(self._cancel(fn, event_id, headers))
        self.status = JobStatus.DONE

    # --- the turn ---------------------------------------------------------------------------------------------

    async def _turn(self) -> AsyncGenerator[Event, None]:
        bridge, conv, cfg = self._bridge, self.conversation, self._bridge.config
        started = time.perf_counter()
        check_prompt(self.prompt, bool(self.files), cfg.limits)
        earlier = check_history(self.history, cfg.limits) if self.history is not None else None
        media = await inspect_all(self.files, cfg, known=conv.inspected)
        earlier_media = await self._inspect_earlier(earlier or [])
        chain = await bridge.chain()
        try:  # every turn sets the Space's controls: the caller's options, else their defaults
            settings = {o.component: o.default for o in chain.options.values()} | check_options(chain, self.options)
        except ValueError as exc:
            raise InputRejected(str(exc), reason="bad_option") from exc
        try:  # where the page would put each file; a Space with no place for a kind says so before any upload
            places = [chain.file_places([m.kind for m in files]) for files in (*earlier_media, media)]
        except ValueError as exc:
            raise UploadRejected(str(exc), reason="no_place") from exc

        conv.belongs_to(cfg.space_url)
        values, done, moved = self._restore(chain, earlier, earlier_media)
        if moved:  # the chat was cut back: let the steps that copy it into the Space's State see it
            await self._steps(chain, chain.replay_after, values)
        for turn, files, where in zip((earlier or [])[len(done):], earlier_media[len(done):], places[len(done):]):
            await self._fill(chain, values, turn.text, files, where)
            values.update(settings)
            await self._steps(chain, chain.replay_before, values)
            if turn.reply:
                values[chain.chatbot] = with_reply(list(values.get(chain.chatbot) or []), turn.reply, chain.tuples)
            await self._steps(chain, chain.replay_after, values)
            done.append((turn_key(turn.text, files, turn.reply), chat_length(values.get(chain.chatbot))))
        await self._fill(chain, values, self.prompt, media, places[-1])
        uploaded_at = time.perf_counter()
        start = chat_length(values.get(chain.chatbot))
        first_text: tuple[float, float] | None = None  # when the first text came, and when its step began
        values.update(settings)  # once, as a person sets the controls before pressing Enter
        for index, step in enumerate(chain.steps):
            step_began = time.perf_counter()
            try:
                async with aclosing(self._run_step(chain, step, values, start)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta) and first_text is None:
                            first_text = time.perf_counter(), step_began
                        yield event
            except Phi4Error as exc:  # a whole reply stands when a step that only touches the page fails after it
                if index not in chain.page_only or not self.reply.strip():
                    raise
                log.warning("The Space's step fn %d after the reply failed (%s: %s); the reply is whole, so the "
                            "turn stands", step.fn, type(exc).__name__, exc)
        if not self.reply.strip():
            raise RemoteError(f"The Space ran its whole chat ({len(chain.steps)} steps: fn "
                              f"{', '.join(str(s.fn) for s in chain.steps)}) but added no reply text to its chatbot. "
                              "Retry; if it keeps happening, the Space may not answer this kind of message.")
        # The conversation takes the turn before Done, so a caller that stops reading at Done loses nothing.
        done.append((turn_key(self.prompt, media, self.reply), chat_length(values.get(chain.chatbot))))
        conv.values, conv.done, conv.chatbot = values, done, chain.chatbot
        timings = {"upload_s": uploaded_at - started, "total_s": time.perf_counter() - started}
        if first_text is not None:  # the step that streams the reply began when the steps before it had ended
            timings["first_text_s"], timings["reply_step_s"] = first_text[0] - started, first_text[1] - started
        yield Done(self.reply, timings)

    async def _inspect_earlier(self, earlier: Sequence[Turn]) -> list[list[MediaFile]]:
        cfg, known = self._bridge.config, self.conversation.inspected
        out = []
        for turn in earlier:
            out.append(await inspect_all(list(turn.files), cfg, new_turn=False, known=known))
        return out

    def _restore(self, chain: Chain, earlier: Sequence[Turn] | None, earlier_media: Sequence[Sequence[MediaFile]]
                 ) -> tuple[dict[int, Any], list[tuple[TurnKey, int]], bool]:
        """The component values to start from, the turns they already hold, and whether the chat was cut back:
        the conversation as it stands when the caller brings no history; else cut back to the longest run of
        turns it shares with what the conversation did (the chatbot value only grows, so an earlier state of it
        is a prefix of it)."""
        conv = self.conversation
        values = copy.deepcopy(conv.values) if conv.values else chain.initial_values()
        if earlier is None:
            return values, list(conv.done), False
        keys = [turn_key(t.text, m, t.reply) for t, m in zip(earlier, earlier_media)]
        shared = 0
        while shared < min(len(keys), len(conv.done)) and conv.done[shared][0] == keys[shared]:
            shared += 1
        chat = values.get(chain.chatbot)
        if shared == len(conv.done):
            return values, list(conv.done), False
        if shared and isinstance(chat, list):
            values[chain.chatbot] = chat[: conv.done[shared - 1][1]]
            return values, list(conv.done[:shared]), True
        return {**values, chain.chatbot: chain.initial_values().get(chain.chatbot)}, [], True

    async def _fill(self, chain: Chain, values: dict[int, Any], text: str, media: Sequence[MediaFile],
                    places: Sequence[int]) -> None:
        """Type the message as a person would: the text into the chat's text input, each file (uploaded, as
        FileData) where ``chain.file_places`` put it; the chain's other file inputs are left empty."""
        remote = await self._upload(media)
        files = [remote[m.path] for m in media]
        for slot in chain.file_inputs():
            values[slot] = None
        in_box: list[FileData] = []
        for place, data in zip(places, files):
            if place == chain.textbox:
                in_box.append(data)
            elif chain.kind(place) == "file" and chain.components[place].props.get("file_count") in ("multiple",
                                                                                                      "directory"):
                values[place] = [*(values.get(place) or []), data]
            else:
                values[place] = {"video": data, "subtitles": None} if chain.kind(place) == "video" else data
        if chain.multimodal:
            box: TextboxValue = {"text": text, "files": in_box}
            values[chain.textbox] = box
        else:
            values[chain.textbox] = text

    async def _steps(self, chain: Chain, steps: Sequence[Step], values: dict[int, Any]) -> None:
        """Steps of a replay: run for their outputs only (a replay shows nothing)."""
        for step in steps:
            async with aclosing(self._run_step(chain, step, values, None)) as events:
                async for _ in events:
                    pass

    async def _upload(self, media: Sequence[MediaFile]) -> dict[str, FileData]:
        if not media:
            return {}
        bridge, conv = self._bridge, self.conversation
        return await bridge.guard(upload(bridge.session, protocol.routes(bridge.config, await bridge.chain()), media,
                                         conv.session_hash, self._plain_headers(), conv.uploaded))

    async def _run_step(self, chain: Chain, step: Step, values: dict[int, Any], start: int | None
                        ) -> AsyncGenerator[Event, None]:
        """One step, as the page runs it: ``/run/predict`` when it is not queued (the queue when the Space says
        so), else joined and streamed; its outputs written into ``values``. With ``start`` (a live turn, the
        chatbot's length when it began), a step writing the chatbot hands on the reply text it adds."""
        bridge, conv = self._bridge, self.conversation
        chatbot = step.outputs.index(chain.chatbot) if start is not None and chain.chatbot in step.outputs else None
        if not step.queue:
            data = step_inputs(chain, step, values)
            try:
                out = await bridge.guard(protocol.predict(bridge.session, bridge.config, chain, step, data,
                                                          conv.session_hash, self._plain_headers()))
            except protocol.QueueOnly:
                log.info("The Space's step fn %d must go through the queue", step.fn)
            else:
                apply_outputs(chain, step, values, out)
                if chatbot is not None:
                    reply = ReplyStream(chatbot, start=start or 0, text=self.reply)
                    reply.outputs = list(out)
                    for event in reply.new_text():
                        self.reply += event.text if isinstance(event, TextDelta) else ""
                        yield event
                    self.reply = reply.text
                return
        async with aclosing(self._queued(chain, step, values, chatbot, start or 0)) as events:
            async for event in events:
                yield event

    async def _queued(self, chain: Chain, step: Step, values: dict[int, Any],
                      chatbot: int | None, start: int) -> AsyncGenerator[Event, None]:
        """Join the queue for ``step`` and stream it; on success its outputs are stored into ``values``. A refused
        ZeroGPU token is fetched again and the step joined once more, when nothing has been shown yet."""
        for attempt in (1, 2):
            headers, token = await self._queue_headers()
            try:
                async with aclosing(self._stream(chain, step, values, headers, chatbot, start)) as events:
                    async for event in events:
                        yield event
                return
            except TokenRejected:
                if token is None or attempt == 2 or self.reply:
                    raise
                self._bridge.tokens.invalidate(token)
                log.info("The Space refused the ZeroGPU token; fetching a new one and retrying the step once")

    async def _stream(self, chain: Chain, step: Step, values: dict[int, Any], headers: dict[str, str],
                      chatbot: int | None, start: int) -> AsyncGenerator[Event, None]:
        bridge, conv = self._bridge, self.conversation
        data = step_inputs(chain, step, values)
        event_id = await bridge.guard(protocol.join(bridge.session, bridge.config, chain, step, data,
                                                    conv.session_hash, headers))
        self._remote = (event_id, step.fn, self._plain_headers())  # ZeroGPU headers go with the join alone
        if self.status in (JobStatus.PENDING, JobStatus.RUNNING) and not self.reply:
            self.status = JobStatus.QUEUED
        reply = ReplyStream(chatbot, start=start, text=self.reply, diffs=chain.diffs)
        batches = protocol.message_batches(bridge.session, bridge.config, chain, conv.session_hash, event_id,
                                           self._plain_headers())
        try:
            while True:
                try:
                    batch = await bridge.guard(batches.__anext__())
                except StopAsyncIteration:
                    break
                events: list[Event] = []
                failure: Phi4Error | None = None
                for message in batch:
                    try:
                        events.extend(reply.handle(message))
                    except Phi4Error as exc:
                        failure = exc
                        break
                if reply.completed:  # known before this batch's text is handed on (``on_space`` says so)
                    self._remote = None
                for event in coalesce(events) if chatbot is not None else ():
                    if isinstance(event, Started | TextDelta):
                        self.status = JobStatus.RUNNING
                    if isinstance(event, TextDelta):
                        self.reply += event.text
                    yield event
                if failure is not None:
                    raise failure
        finally:
            if reply.completed:
                self._remote = None  # the Space has ended this job, successfully or not: nothing to cancel
            await batches.aclose()
        if not reply.completed or reply.outputs is None:
            raise ProtocolError("The Space ended the stream without finishing the reply.")
        if chatbot is not None:
            self.reply = reply.text
        apply_outputs(chain, step, values, reply.outputs)

    # --- headers ----------------------------------------------------------------------------------------------

    def _plain_headers(self) -> dict[str, str]:
        """What the page adds to a request that is not a queued GPU step: nothing (the referer is the session's)."""
        return {}

    async def _queue_headers(self) -> tuple[dict[str, str], Any]:
        """ZeroGPU headers as the page sends them: with every ``queue/join`` (gradio 5.12+ asks the Hub's page for
        them without looking at the step) and nothing else. A visitor's own ``x-ip-token`` goes alone: the host's
        token is never mixed into the same call."""
        if self.ip_token:
            return {"x-ip-token": self.ip_token}, None
        token = await self._bridge.guard(self._bridge.tokens.get())
        return token.headers(), token

    async def _cancel(self, fn: int, event_id: str, headers: dict[str, str]) -> None:
        bridge = self._bridge
        if bridge._session is not None and not bridge._session.closed:
            await protocol.cancel(bridge.session, bridge.config, await bridge.chain(), fn,
                                  self.conversation.session_hash, event_id, headers)

    async def _space_gone(self) -> SpaceUnavailable | None:
        """After a route answered 404: the Space's own error when its ``/config`` is gone too (then the Space
        is, not the route), else None (the route was wrong: a protocol problem, as ``RouteMissing`` says)."""
        bridge = self._bridge
        try:
            await bridge.guard(fetch_config(bridge.session, bridge.config.space_url))
        except SpaceUnavailable as exc:
            return exc
        except Phi4Error:
            return None
        return None

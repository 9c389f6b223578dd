"""``Job``: one turn, owning all of its state. Iterate it for events, ``cancel()`` it, read ``status`` and ``reply``.

A turn does what the Space's own page does when a person presses Enter (see ``chain``):

1. check the message, the caller's history and the options here, before anything is sent;
2. bring the conversation to where the caller's history says it is: restore it from what this conversation
   already did (its chatbot value as the Space returned it, cut back to that turn), and replay any earlier
   turn it has not seen through the Space's own user step (no GPU), adding each earlier reply in the shape the
   Space's chatbot gives its own;
3. upload the new files and put them into the textbox value as FileData, as the page does;
4. run the chain: the steps before the bot step (``/run/predict``, or the queue when a step is queued), then the
   bot step through the queue, streamed; the Space's own words come back when a step refuses the turn.

The conversation takes the new state only when the turn succeeds, so a failed turn can simply be sent again.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from . import protocol
from .chain import Chain, Step, apply_outputs, check_options, step_inputs
from .errors import InputRejected, Phi4Error, ProtocolError, TokenRejected
from .events import Done, Event, JobStatus, Started, TextDelta
from .media import MediaFile
from .messages import FileData, TextboxValue, Turn, assistant_message, check_history, check_prompt, last_assistant
from .stream import ReplyStream, coalesce
from .upload import inspect_all, upload

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

        conv.belongs_to(cfg.space_url)
        values, done, moved = self._restore(chain, earlier, earlier_media)
        if moved:  # the chat was cut back: let the steps that copy it into the Space's State see it
            await self._steps(chain, chain.post_bot, values)
        for turn, files in zip((earlier or [])[len(done):], earlier_media[len(done):]):
            await self._run_user_steps(chain, values, turn.text, files, {})
            if turn.reply:
                chat = values.get(chain.chatbot) or []
                like = last_assistant(chat)
                values[chain.chatbot] = [*chat, assistant_message(turn.reply, like, _parts_shape(chat))]
            await self._steps(chain, chain.post_bot, values)
            done.append((turn_key(turn.text, files, turn.reply), len(values.get(chain.chatbot) or [])))
        uploaded_at = await self._run_user_steps(chain, values, self.prompt, media, settings)
        first_text: float | None = None
        for step in chain.steps[chain.bot:]:
            values.update(settings)
            if step is not chain.bot_step:
                await self._step(chain, step, values)
                continue
            async with aclosing(self._queued(chain, step, values, step.outputs.index(chain.chatbot))) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        first_text = first_text or time.perf_counter()
                    yield event
        # The conversation takes the turn before Done, so a caller that stops reading at Done loses nothing.
        done.append((turn_key(self.prompt, media, self.reply), len(values.get(chain.chatbot) or [])))
        conv.values, conv.done, conv.chatbot = values, done, chain.chatbot
        timings = {"upload_s": uploaded_at - started, "total_s": time.perf_counter() - started}
        if first_text is not None:
            timings["first_text_s"] = first_text - started
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

    async def _run_user_steps(self, chain: Chain, values: dict[int, Any], text: str, media: Sequence[MediaFile],
                              settings: Mapping[int, Any]) -> float:
        """Put the message into the textbox (files uploaded, as FileData) and run the steps before the bot step.
        Returns when the uploads were done."""
        remote = await self._upload(media)
        files = [remote[m.path] for m in media]
        audio_slot = None if chain.accepts_audio_in_textbox() else chain.audio_input(chain.steps[0])
        in_box = files
        if audio_slot is not None:
            audio = [f for f, m in zip(files, media) if m.kind == "audio"]
            in_box = [f for f, m in zip(files, media) if m.kind != "audio"]
            values[audio_slot] = audio[0] if audio else None
            in_box += audio[1:]  # more than one recording: the Space says what it makes of them
        box: TextboxValue = {"text": text, "files": in_box}
        values[chain.textbox] = box
        uploaded_at = time.perf_counter()
        values.update(settings)
        await self._steps(chain, chain.pre_bot, values)
        return uploaded_at

    async def _steps(self, chain: Chain, steps: Sequence[Step], values: dict[int, Any]) -> None:
        for step in steps:
            await self._step(chain, step, values)

    async def _upload(self, media: Sequence[MediaFile]) -> dict[str, FileData]:
        if not media:
            return {}
        bridge, conv = self._bridge, self.conversation
        return await bridge.guard(upload(bridge.session, bridge.config, media, conv.session_hash,
                                         self._plain_headers(), conv.uploaded))

    async def _step(self, chain: Chain, step: Step, values: dict[int, Any]) -> None:
        """A step whose outputs the page only stores: ``/run/predict``, or the queue when the Space wants that."""
        bridge, conv = self._bridge, self.conversation
        data = step_inputs(chain, step, values)
        if not step.queue:
            try:
                out = await bridge.guard(protocol.predict(bridge.session, bridge.config, step, chain.trigger_id, data,
                                                         conv.session_hash, self._plain_headers()))
            except protocol.QueueOnly:
                log.info("The Space's step fn %d must go through the queue", step.fn)
            else:
                apply_outputs(chain, step, values, out)
                return
        async with aclosing(self._queued(chain, step, values, None)) as events:
            async for _ in events:
                pass

    async def _queued(self, chain: Chain, step: Step, values: dict[int, Any],
                      chatbot: int | None) -> AsyncGenerator[Event, None]:
        """Join the queue for ``step`` and stream it; on success its outputs are stored into ``values``. A refused
        ZeroGPU token is fetched again and the step joined once more, when nothing has been shown yet."""
        for attempt in (1, 2):
            headers, token = await self._queue_headers()
            try:
                async with aclosing(self._stream(chain, step, values, headers, chatbot)) as events:
                    async for event in events:
                        yield event
                return
            except TokenRejected:
                if token is None or attempt == 2 or self.reply:
                    raise
                self._bridge.tokens.invalidate(token)
                log.info("The Space refused the ZeroGPU token; fetching a new one and retrying the step once")

    async def _stream(self, chain: Chain, step: Step, values: dict[int, Any], headers: dict[str, str],
                      chatbot: int | None) -> AsyncGenerator[Event, None]:
        bridge, conv = self._bridge, self.conversation
        data = step_inputs(chain, step, values)
        event_id = await bridge.guard(protocol.join(bridge.session, bridge.config, step, chain.trigger_id, data,
                                                    conv.session_hash, headers))
        self._remote = (event_id, step.fn, self._plain_headers())  # ZeroGPU headers go with the join alone
        if chatbot is not None:
            self.status = JobStatus.QUEUED
        reply = ReplyStream(chatbot)
        batches = protocol.message_batches(bridge.session, bridge.config, conv.session_hash, event_id,
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
            await protocol.cancel(bridge.session, bridge.config, fn, self.conversation.session_hash, event_id,
                                  headers)


def _parts_shape(chat: Any) -> bool:
    """Whether the Space's chatbot holds content as a list of parts (gradio 6) rather than a string (gradio 5):
    as its own latest message does."""
    for message in reversed(chat if isinstance(chat, list) else []):
        if isinstance(message, Mapping) and message.get("content") is not None:
            return isinstance(message["content"], list)
    return False

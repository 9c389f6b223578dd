"""The chat's event handlers. Each is short and named for what the user did; they share ``ChatService``.

Visitors: a handler that gradio hands a ``gr.Request`` reads the ``Visitor`` of it once (``Visitor.of``) and passes
that inward; ``events`` takes a ``Visitor`` (the OpenAI API and MCP build theirs with ``Visitor.api``). A browser
session (or a gradio_client ``Client``) is keyed by its ``session``; each key has its own ``Conversation`` (remote
session hash + upload memory) and its own turn slots. The turns of a client over all its sessions and surfaces are
counted in the guard's ``Turns`` (``--turns-per-client``). The history of the UI
comes from the visitor's own ``gr.Chatbot`` value, so nothing of one visitor's chat reaches another's.

Stop: the Stop button's event ``cancels`` the running chat events; gradio then closes this module's async
generator, which leaves ``bridge.submit(...)``'s ``async with`` block, and the bridge cancels the job on the Space.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from typing import Any

import gradio as gr

from phi4_bridge import Conversation, Done, Event, InputRejected, Phi4Error, Started, TextDelta
from phi4_bridge.errors import redact

from ..door.guard import Guard
from ..settings import AppSettings
from ..space.holder import BridgeHolder
from ..visitors.budget import Budget, OverBudget
from ..visitors.identity import Visitor
from ..visitors.usage import UsageLog
from . import chat_values as cv
from .pacing import batches, shared_frame

log = logging.getLogger(__name__)
parts_log = log.getChild("parts")  # one line per turn at DEBUG: the parts of the way to the first words

GENERIC_FAILURE = "Something went wrong in this app while answering; it has been logged. Press Retry to try again."
MAX_VISITORS = 2_000
STOP_SETTLE_S = 0.4


class Visitors:
    """Per-visitor state keyed by gradio's session hash: forgotten after ``idle_s`` without a turn, and the
    longest-idle dropped first beyond ``max_items`` (a visitor with a turn running is never dropped)."""

    def __init__(self, per_visitor: int, idle_s: float = 3600.0, max_items: int = MAX_VISITORS) -> None:
        self.per_visitor = per_visitor
        self.idle_s = idle_s
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[Conversation, asyncio.Semaphore, float]] = OrderedDict()

    def get(self, key: str | None) -> tuple[Conversation, asyncio.Semaphore]:
        """The visitor's state; ``None`` (a caller without a session) gets fresh state that is not kept."""
        now = time.monotonic()
        self.prune(now)
        if key is None:
            return Conversation(), asyncio.Semaphore(self.per_visitor)
        if key in self._items:
            conversation, slots, _ = self._items[key]
        else:
            conversation, slots = Conversation(), asyncio.Semaphore(self.per_visitor)
        self._items[key] = (conversation, slots, now)
        self._items.move_to_end(key)
        if len(self._items) > self.max_items:  # a new visitor over the cap: the longest idle goes now, not next time
            self.prune(now)
        return conversation, slots

    def prune(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for _ in range(len(self._items)):
            key, (conversation, slots, used) = next(iter(self._items.items()))
            if now - used < self.idle_s and len(self._items) <= self.max_items:
                break
            if slots.locked():  # a turn is running: keep the visitor, as if just used
                self._items[key] = (conversation, slots, now)
                self._items.move_to_end(key)
            else:
                del self._items[key]

    def forget(self, key: str | None) -> None:
        if key is not None:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


def log_failure(exc: Phi4Error) -> None:
    """Where a failure becomes a sentence for the visitor, one line for whoever runs the app: a refused input
    with its reason; anything else with the chain of causes under it (the traceback at DEBUG level, so a fault
    of the Space never fills the log). The texts are already free of tokens."""
    if isinstance(exc, InputRejected):
        log.info("refused a turn (%s): %s", exc.reason, exc)
        return
    causes: list[str] = []
    cause = exc.__cause__
    while cause is not None and len(causes) < 4:
        causes.append(f"{type(cause).__name__}: {redact(str(cause))[:200]}")
        cause = cause.__cause__
    log.warning("a turn failed: %s: %s%s", type(exc).__name__, exc,
                "".join(f" <- {c}" for c in causes))
    log.debug("the failed turn's traceback", exc_info=exc)


class TurnRecord:
    """What the Usage view keeps of one turn: who, from where, how it ended and how long the Space answered
    (from its start to its last word); a turn that ends without ``Done`` and without an error was stopped.

    It also times the parts of the way to the first words (``parts``, ms), logged at DEBUG on the
    ``mirror.chat.handlers.parts`` logger (the benchmark turns it on with PHI4_TURN_PARTS=1): gradio's queue hop
    (joined to this handler), the wait for the event stream, the budget, the bridge's uploads, the steps before
    the one that streams the reply (the user step), its first text (then the bot step and the Space's queue too),
    and the usage write."""

    def __init__(self, visitor: str, source: str, entered: float, joined: float | None) -> None:
        self.visitor, self.source = visitor, source
        self.at, self._t0 = time.time(), time.monotonic()
        self.started: float | None = None
        self.done: float | None = None
        self.outcome = "stopped"
        self.parts: dict[str, float] = {"stream_and_budget": (self._t0 - entered) * 1000}
        if joined is not None:
            self.parts["queue_hop"] = (entered - joined) * 1000

    def saw(self, event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, (Started, TextDelta)) and self.started is None:
            self.started = now
        if isinstance(event, TextDelta) and "first_text" not in self.parts:
            self.parts["first_text"] = (now - self._t0) * 1000
        elif isinstance(event, Done):
            self.started = self.started or now
            self.done, self.outcome = now, "ok"
            for key in ("upload_s", "reply_step_s", "first_text_s"):
                if key in event.timings:
                    self.parts["bridge_" + key[:-2]] = event.timings[key] * 1000

    def save(self, usage: UsageLog | None) -> None:
        began = time.monotonic()
        if usage is not None:
            end = self.done or time.monotonic()
            usage.record(self.visitor, self.source, self.outcome, self.at,
                         answer_s=None if self.started is None else end - self.started, total_s=end - self._t0)
        if parts_log.isEnabledFor(logging.DEBUG):
            self.parts["usage_write"] = (time.monotonic() - began) * 1000
            parts_log.debug("turn parts %s", json.dumps({k: round(v, 2) for k, v in self.parts.items()}))


class ChatService:
    def __init__(self, holder: BridgeHolder, settings: AppSettings, guard: Guard | None = None,
                 budget: Budget | None = None, usage: UsageLog | None = None) -> None:
        self.holder = holder
        self.budget = budget or Budget(None)  # turns per visitor (mirror/visitors/budget.py); no limit when not given
        self.usage = usage  # one row per turn for the host's Usage view (mirror/visitors/usage.py)
        self.settings = settings
        self.guard = guard or Guard(settings)
        self.visitors = Visitors(settings.concurrency_per_visitor, settings.visitor_idle_s, settings.max_visitors)
        self._jobs: set[Any] = set()  # running bridge jobs, cancelled on the Space at shutdown
        # the task reading each page session's running turn (its frame rate's reader): what Stop cancels
        self._readers: dict[str, asyncio.Task[Any]] = {}
        # at most one chat update per interval while a reply streams (mirror/chat/pacing.py says why); 0: every chunk
        self.ui_interval_s = 1 / settings.ui_updates_per_s if settings.ui_updates_per_s > 0 else 0.0
        self.ui_total_per_s = settings.ui_updates_total_per_s

    async def events(self, visitor: Visitor, text: str, files: Sequence[str],
                     history: list[dict[str, Any]] | None, options: dict[str, Any] | None = None,
                     source: str = "chat") -> AsyncGenerator[Event, None]:
        """One turn for ``visitor``; ``history=None`` uses the visitor's own conversation.
        ``options`` are the Generation settings; those the Space in use does not have (after a switch between
        the stand-in and the real Space) are left out. The turn counts against the visitor's budget once it is
        about to be sent (given back when the bridge refuses it before sending), and is recorded for the Usage
        view under ``source``. No await before the turn is counted in ``guard.turns``: the API's wait for a slot
        of ``--concurrency`` (``AppRunner``) and this count are then one step."""
        entered = time.monotonic()
        joined = self.guard.joined_at(visitor)
        conversation, slots = self.visitors.get(visitor.session)
        if slots.locked():
            raise InputRejected("You already have a turn running; wait for it or press Stop.", reason="busy")
        client, turns = visitor.client, self.guard.turns  # over all their sessions: the turn cap's key and the budget's
        if not turns.start(client):
            log.warning("refused a turn: %s already has %d turns running", client, turns.running_of(client))
            raise InputRejected(f"You already have {turns.cap} turns running (from this "
                                 "login or address); wait for one to finish.", reason="busy")
        try:
            async with slots:
                session = visitor.session_hash  # a turn that ``joined`` has one
                if joined is not None and session and not await self.guard.stream_opened(session, joined):
                    log.warning("dropped a turn of %s: its event stream was not opened within %.0f s", client,
                                self.settings.stream_grace_s)
                    raise InputRejected("This turn was dropped: its reply stream was never opened.",
                                         reason="no_stream")
                verdict = (await asyncio.to_thread(self.budget.spend, client) if self.budget.blocking
                           else self.budget.spend(client))
                if isinstance(verdict, OverBudget):
                    log.info("refused a turn of %s: over the budget of %d per %s", client, verdict.limit,
                             verdict.words)
                    raise InputRejected(verdict.sentence(), reason="budget", retry_after=verdict.retry_at - verdict.now)
                turn = TurnRecord(client, source, entered, joined)
                try:
                    bridge = await self.holder.get()
                    offered = await bridge.options() if options else {}
                    async with bridge.submit(text, files=list(files), history=history, conversation=conversation,
                                             ip_token=visitor.ip_token,
                                             options={k: v for k, v in (options or {}).items()
                                                      if k in offered}) as job:
                        self._jobs.add(job)
                        reader = asyncio.current_task()
                        if session and reader is not None:
                            self._readers[session] = reader
                        try:
                            async for event in job:
                                turn.saw(event)
                                yield event
                        finally:
                            self._jobs.discard(job)
                            if session and self._readers.get(session) is reader:
                                del self._readers[session]
                except InputRejected:
                    if self.budget.blocking:  # refused here, before anything reached the Space
                        await asyncio.to_thread(self.budget.refund, client)
                    else:
                        self.budget.refund(client)
                    turn.outcome = "refused"
                    raise
                except Phi4Error:
                    turn.outcome = "error"
                    raise
                finally:  # off the event loop: a SQLite file another replica is writing, or Redis, may keep it waiting
                    await asyncio.to_thread(turn.save, self.usage)
        finally:
            turns.end(client)

    async def cancel_all(self) -> None:
        """Cancel every running turn on the Space (shutdown)."""
        jobs = list(self._jobs)
        if jobs:
            log.info("shutting down: cancelling %d running turn%s on the Space", len(jobs), "s" * (len(jobs) != 1))
            await asyncio.gather(*(job.cancel() for job in jobs), return_exceptions=True)

    def cancel_all_from_other_thread(self, timeout: float = 2.0) -> None:
        loop = self.holder._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.cancel_all(), timeout), loop).result(timeout + 0.5)
        except Exception:  # noqa: BLE001 - shutting down; the bridge's close follows
            log.debug("cancelling running turns at shutdown did not finish", exc_info=True)

    def forget(self, request: gr.Request | None) -> None:
        """The page was closed (``demo.unload``): its conversation goes."""
        self.visitors.forget(Visitor.of(request).session)

    # --- UI handlers ------------------------------------------------------------------------------------------

    def add_user_turn(self, message: dict[str, Any] | None, history: list[cv.Message]
                      ) -> tuple[list[cv.Message], gr.MultimodalTextbox]:
        """Show the user's turn at once (files as media) and lock the input until the reply is done."""
        message = message or {}
        text, files = (message.get("text") or "").strip(), list(message.get("files") or [])
        history = cv.without_pending(history or [])
        if text or files:
            history = history + [cv.user_message(text, files)]
        return history, gr.MultimodalTextbox(value=None, interactive=False)

    async def respond(self, history: list[cv.Message], visitor: Visitor, options: dict[str, Any] | None = None
                      ) -> AsyncGenerator[list[cv.Message], None]:
        """Stream the reply to the last user turn into the chat: queue notes, then the growing text."""
        history = cv.without_pending(history or [])
        i = cv.last_user_index(history)
        if i is None or (i < len(history) - 1 and not all(cv.is_note(m) for m in history[i + 1:])):
            yield history
            return
        base, earlier = history[: i + 1], history[:i]
        text, files = cv.split_user(history[i])
        yield base + [cv.queue_note(None)]
        reply = ""
        events = self.events(visitor, text, [f["path"] for f in files], earlier, options)
        try:
            async with self.paced(events) as paced:
                async for batch in paced:
                    shown: list[cv.Message] | None = None
                    for event in batch:
                        reply, shown = cv.after_event(event, reply, shown)
                    if shown is not None:
                        yield base + shown
        except Phi4Error as exc:
            log_failure(exc)
            partial = [cv.bot_message(reply)] if reply else []
            yield base + partial + [cv.note(f"⚠️ {exc}", cv.RETRY_HINT)]
        except Exception:
            log.exception("unexpected failure while answering")
            yield base + [cv.note(f"⚠️ {GENERIC_FAILURE}", cv.RETRY_HINT)]

    def frame(self) -> float:
        """A streaming reply's shortest frame now: the visitor's own rate, shared with the others streaming."""
        return shared_frame(self.ui_interval_s, len(self._readers), self.ui_total_per_s)

    def paced(self, events: AsyncIterator[Event]) -> AbstractAsyncContextManager[AsyncGenerator[list[Event], None]]:
        """A turn's events in lists at its frame rate (the page's chat and ``/chat`` alike); anything but text (queue
        news, the end) goes at once."""
        return aclosing(batches(events, self.frame, urgent=lambda e: not isinstance(e, TextDelta)))

    @staticmethod
    def unlock() -> gr.MultimodalTextbox:
        return gr.MultimodalTextbox(interactive=True)

    async def stopped(self, history: list[cv.Message], request: gr.Request
                      ) -> tuple[list[cv.Message], gr.MultimodalTextbox]:
        """After Stop: the reply as it stood, and a note. The turn's reader is cancelled here, so its job is
        cancelled on the Space now: gradio's own ``cancels`` drops the chat step's generator, whose clean-up may
        wait for the garbage collector. The short wait lets an update that was already on its way to the
        browser land first, so this one (with the note) is the last word."""
        reader = self._readers.pop(Visitor.of(request).session_hash or "", None)
        if reader is not None and not reader.done():
            reader.cancel()
        await asyncio.sleep(STOP_SETTLE_S)
        history = cv.without_pending(history or [])
        return history + [cv.note("⏹️ Stopped", "You stopped this reply. Press Retry (↻) to ask again.")], \
            gr.MultimodalTextbox(interactive=True)

    @staticmethod
    def prepare_retry(history: list[cv.Message]) -> tuple[list[cv.Message], gr.MultimodalTextbox]:
        """Keep everything up to the last user turn; ``respond`` then answers it again."""
        history = history or []
        i = cv.last_user_index(history)
        return (history[: i + 1] if i is not None else history), gr.MultimodalTextbox(interactive=False)

    @staticmethod
    def undo(history: list[cv.Message]) -> tuple[list[cv.Message], gr.MultimodalTextbox]:
        """Take the last user turn back into the input box, with its files."""
        history = history or []
        i = cv.last_user_index(history)
        if i is None:
            return history, gr.MultimodalTextbox()
        text, files = cv.split_user(history[i])
        return history[:i], gr.MultimodalTextbox(value={"text": text, "files": [f["path"] for f in files]})

    @staticmethod
    def edit(history: list[cv.Message], saved: Any, edit: gr.EditData
             ) -> tuple[list[cv.Message], gr.MultimodalTextbox]:
        """An earlier user turn was edited: keep what came before it, resend it with the new text and its files.

        gradio's chatbot sends the edited message with its content replaced by the new text alone, so the turn's
        files are taken from ``saved``, the chat as this browser stored it after the last turn (checked like any
        value from the browser)."""
        history = history or []
        index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
        if not (0 <= index < len(history)) or history[index].get("role") != "user":
            return history, gr.MultimodalTextbox()
        _, files = cv.split_user(history[index])
        before = cv.safe_history(saved)
        if not files and index < len(before) and before[index].get("role") == "user":
            old_text, old_files = cv.split_user(before[index])
            if not isinstance(edit.previous_value, str) or old_text == edit.previous_value:
                files = old_files
        value = edit.value
        text = value if isinstance(value, str) else cv.split_user({"content": value})[0]
        return history[:index] + [cv.user_message(text.strip(), files)], gr.MultimodalTextbox(interactive=False)

    # --- the /chat API ----------------------------------------------------------------------------------------

    async def chat_api(self, message: dict[str, Any] | None, history: Any = None, request: gr.Request | None = None
                       ) -> AsyncGenerator[str, None]:
        """``/chat``: a multimodal message dict (and optionally a chatbot-shaped history) in, the reply so far
        out, streamed. Without a history the caller's own session keeps the conversation."""
        why = self.guard.check_message(message)
        if why is not None:  # the door checks the raw request too; this covers callers it cannot see
            log.warning("refused a /chat message: %s", why)
            raise gr.Error(why, print_exception=False)
        message = message or {}
        text, files = message.get("text") or "", list(message.get("files") or [])
        earlier = cv.safe_history(history) if history else None
        visitor = Visitor.of(request)
        # A direct call (/run/chat, /api/chat) gets only the first value a generator yields, and gradio then drops
        # the generator (which cancels the Space job): such a caller gets the whole reply in one value instead.
        whole = "/gradio_api/run/" in visitor.route or "/gradio_api/api/" in visitor.route
        # Paced as the page's chat is (``frame``): a fast Space and many callers at once would otherwise make
        # gradio postprocess, diff and send the reply for every chunk, hundreds of times a second.
        events = self.events(visitor, text, files, earlier, source="api")
        reply = ""
        try:
            async with self.paced(events) as paced:
                async for batch in paced:
                    grown = reply
                    for event in batch:
                        grown = cv.reply_after(event, grown)
                    if grown != reply:
                        reply = grown
                        if not whole:
                            yield reply
            if whole:
                yield reply
        except Phi4Error as exc:
            log_failure(exc)
            raise gr.Error(str(exc), print_exception=False) from exc
        except Exception:
            log.exception("unexpected failure in /chat")
            raise gr.Error(GENERIC_FAILURE, print_exception=False) from None

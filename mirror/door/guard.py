"""The app's door: checks that run on every request before gradio sees it (an ASGI middleware), and the
small bookkeeping the chat handlers consult.

``Door`` (installed with ``launch(app_kwargs={"middleware": [Middleware(Door, guard=guard)]})``):

- a session hash (``/queue/join`` body, ``?session_hash=``, ``/heartbeat/<hash>``) must look like gradio's own:
  1-64 of ``[A-Za-z0-9_-]``; anything else is refused with 400 before gradio stores it;
- open heartbeat streams are capped per client address (they are unauthenticated in gradio);
- ``/gradio_api/upload``: a visitor the turn budget says no to uploads nothing (it could send no turn with it, and
  nothing is stored before the budget says yes); a body larger than ``upload_request_limit`` (81 MB) is refused
  at once, and gradio's own 413 (one file over ``max_file_size``) is reworded as the bridge words its limits;
- a chat turn's queue join is refused when its client (login, else address) already has ``turns_per_client``
  turns waiting or running, so a flood of session hashes never fills the queue (``Turns``: the app's one count of
  turns per client, which the chat service keeps for every surface);
- every event body (queue join, ``/run/...``, ``/call/...``; not ``/upload``) is at most ``event_body_limit``
  (4.3 MB, what a history within its limits can take): a larger one is refused with 413 from its
  ``Content-Length`` unread, or as soon as that much has arrived, before gradio decodes it (issue 27: 60 refused
  50 MB histories had grown the app from 0.56 to 3.31 GB);
- ``/chat`` calls (queue join, ``/call/chat``, ``/run/chat``): the message's shape and size are checked on the
  raw JSON (cheap), before gradio preprocesses thousands of file entries; one log line per refusal;
- an event whose ``fn_index`` is not one of the app's is refused with one line (gradio answered 500 and logged a
  5 KB traceback per request);
- ``POST /login``: failures are counted per client address; too many lock that address out for a while;
- event-stream opens (``/queue/data``, ``/call/<api>/<event>``) are recorded in ``StreamOpens``, so a turn
  whose stream was never opened is dropped before it reaches the Space (``Guard.sweep`` for queued turns,
  ``Guard.stream_opened`` at the start of a turn).

Everything here is in memory, bounded, and keyed by client address or session hash.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..visitors.budget import OverBudget
from ..visitors.identity import Visitor, client_key, client_of_event
from . import gradio_internals

log = logging.getLogger(__name__)

SESSION_HASH = re.compile(r"[A-Za-z0-9_-]{1,64}")
BAD_SESSION = "That session id is not one this app hands out (1 to 64 letters, digits, '_' or '-')."
MAX_JOIN_BYTES = 64 * 1024 * 1024  # the most the door ever reads of one request (uploads aside)
HEARTBEATS_PER_CLIENT = 64

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def event_body_limit(limits: Any) -> int:
    """The largest body an event of this app can need (a /chat turn with its history, the UI's turn, an export):
    a history within its limits (``max_history_chars`` plus a prompt, each character at most 12 bytes of JSON: a
    ``\\ud83d\\ude00`` pair) and 4 KB of structure per message and per file entry. 4.3 MB with the default
    limits; file bytes never come this way (they go to ``/upload``)."""
    chars = limits.max_history_chars + limits.max_prompt_chars
    entries = limits.max_history_messages + limits.max_history_files + limits.max_files
    return int(12 * chars + 4096 * entries + 64 * 1024)


def upload_request_limit(limits: Any) -> int:
    """The most one ``/upload`` request may carry: a turn's files at the image limit (8 x 10 MB), plus 1 MB of
    form. Eight 25 MB audio files in one request (199 MB) are refused; a turn of a few recordings fits."""
    return int(limits.max_files * limits.max_image_bytes + 1024 * 1024)


def release(counts: MutableMapping[str, int], key: str) -> None:
    """One fewer for ``key``; the key goes when none are left, so the table holds only clients with something
    running."""
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def valid_session_hash(value: Any) -> bool:
    return isinstance(value, str) and SESSION_HASH.fullmatch(value) is not None


def address_of(scope: Scope) -> str:
    """The address an ASGI request came from (the per-address throttles and the log lines)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Turns:
    """The app's one count of turns per client (``user:NAME``, ``addr:HOST``), capped at ``turns_per_client``.

    ``running``: turns running in the chat service, of every surface (the page, ``/chat``, ``/v1``, MCP: all go
    through ``ChatService.events``, which calls ``start`` and ``end``). ``joining``: chat turns between the door's
    check and gradio's queue (``join``, ``joined``), which the door adds to the turns it reads in gradio's queue.
    No await inside a method: a check and its count are one step, so concurrent turns cannot all slip through.
    (The library's ``phi4-bridge serve``, without the app, keeps a count of its own: ``BridgeRunner``.)"""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.running: dict[str, int] = {}
        self.joining: dict[str, int] = {}

    def running_of(self, client: str) -> int:
        return self.running.get(client, 0)

    def start(self, client: str) -> bool:
        """Count one more turn of ``client`` running, unless it already has ``cap``: then False, nothing counted."""
        if self.running.get(client, 0) >= self.cap:
            return False
        self.running[client] = self.running.get(client, 0) + 1
        return True

    def end(self, client: str) -> None:
        release(self.running, client)

    def join(self, client: str, queued: int) -> bool:
        """Reserve a queue join of ``client``, who has ``queued`` turns in gradio's queue, unless that and the joins
        already on their way make ``cap``: then False, nothing reserved."""
        if queued + self.joining.get(client, 0) >= self.cap:
            return False
        self.joining[client] = self.joining.get(client, 0) + 1
        return True

    def joined(self, client: str) -> None:
        release(self.joining, client)


class StreamOpens:
    """Which sessions (or call event ids) have their event stream open now, or had it open a moment ago."""

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self._open: dict[str, int] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()

    def opened(self, key: str) -> None:
        self._open[key] = self._open.get(key, 0) + 1
        self._touch(key)

    def closed(self, key: str) -> None:
        left = self._open.get(key, 1) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)
        self._touch(key)

    def _touch(self, key: str) -> None:
        self._seen[key] = time.monotonic()
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_items:
            self._seen.popitem(last=False)

    def is_open(self, key: str, since: float | None = None) -> bool:
        """Open now, or opened/closed at or after ``since`` (monotonic)."""
        if key in self._open:
            return True
        seen = self._seen.get(key)
        return seen is not None and since is not None and seen >= since


class LoginThrottle:
    """Failed logins per client address: ``failures`` within ``window_s`` lock the address for ``lockout_s``."""

    def __init__(self, failures: int, window_s: float, lockout_s: float, max_clients: int = 50_000) -> None:
        self.failures, self.window_s, self.lockout_s, self.max_clients = failures, window_s, lockout_s, max_clients
        self._fails: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def locked_for(self, client: str) -> float:
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            self._locked.pop(client, None)
            return 0.0
        return left

    def record(self, client: str, ok: bool) -> None:
        now = time.monotonic()
        if ok:
            self._fails.pop(client, None)
            return
        recent = [t for t in self._fails.get(client, []) if now - t < self.window_s] + [now]
        self._fails[client] = recent
        self._fails.move_to_end(client)
        while len(self._fails) > self.max_clients:
            self._fails.popitem(last=False)
        if len(recent) >= self.failures:
            self._locked[client] = now + self.lockout_s
            self._fails.pop(client, None)
            log.warning("login: %d failed logins from %s; locked out for %.0f s", len(recent), client,
                        self.lockout_s)


class Guard:
    """Shared by the door (middleware) and the chat handlers."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.streams = StreamOpens()
        self.logins = LoginThrottle(settings.login_failures, settings.login_window_s, settings.login_lockout_s)
        self.heartbeats: dict[str, int] = {}
        self.chat_fn_index: int | None = None  # /chat's event (``attach``)
        self.turn_fn_indices: set[int] = set()  # every queued event that is a chat turn (UI and /chat)
        self.turns = Turns(settings.turns_per_client)  # turns per client: the door's joins, the running turns
        self.max_upload_bytes: int = settings.max_upload_bytes
        self.max_event_bytes: int = event_body_limit(settings.bridge.limits)
        self.blocks: Any = None
        self.budget: Any = None  # the app's turn budget (mirror.visitors.budget.Budget)
        self._sweeper: asyncio.Task[None] | None = None
        self.dropped = 0

    def attach(self, blocks: Any, budget: Any) -> None:
        """The page whose events the door checks (built after the guard, which its handlers hold), and the turn
        budget whose "no" also refuses a visitor's uploads."""
        self.blocks, self.budget = blocks, budget
        fns = gradio_internals.event_fn_indices(blocks) or {}
        self.chat_fn_index = next((i for i, fn in fns.items() if fn.api_name == "chat"), None)
        self.turn_fn_indices = {i for i, fn in fns.items() if fn.concurrency_id == "chat"}

    # --- a turn's checks (called by the handlers) ------------------------------------------------------------

    def check_message(self, message: Any) -> str | None:
        """Why a /chat message cannot be sent (shape, number of files, length), or None. Cheap: no file is read."""
        limits = self.settings.bridge.limits
        if message is None:
            return None
        if not isinstance(message, dict):
            return 'The message must be an object like {"text": "...", "files": [...]}.'
        text, files = message.get("text"), message.get("files")
        if text is not None and not isinstance(text, str):
            return 'The message\'s "text" must be a string.'
        if files is not None and not isinstance(files, list):
            return 'The message\'s "files" must be a list.'
        if files and len(files) > limits.max_files:
            return f"{len(files):,} files is more than the {limits.max_files} a turn can carry."
        if text and len(text) > limits.max_prompt_chars:
            return f"The message is {len(text):,} characters; the limit is {limits.max_prompt_chars:,}."
        return None

    def over_budget(self, scope: Scope) -> str | None:
        """The budget's sentence when the request's visitor (login, else address) has no turn left, else None."""
        if self.budget is None:
            return None
        verdict = self.budget.check(self.client_of_request(scope))
        return verdict.sentence() if isinstance(verdict, OverBudget) else None

    def joined_at(self, visitor: Visitor) -> float | None:
        """When a queued turn joined (monotonic), or None for a call that has no event stream to wait for (a
        direct ``/run/chat`` call answers on its own connection)."""
        path, session = visitor.route, visitor.session_hash
        if not session or not ("/gradio_api/queue/join" in path or "/gradio_api/call/" in path):
            return None
        for event in gradio_internals.running_events(self.blocks):
            if event.session_hash == session:
                return gradio_internals.enqueue_time(event)
        return time.monotonic()

    async def stream_opened(self, key: str, joined: float) -> bool:
        """Wait (at most until ``joined + stream_grace_s``) for the turn's event stream to be open."""
        deadline = joined + self.settings.stream_grace_s
        while True:
            if self.streams.is_open(key, since=joined - 1.0):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.05, left))

    def turns_of(self, client: str) -> int:
        """Chat turns of ``client`` (``user:NAME`` or ``addr:HOST``) waiting in gradio's queue or running."""
        events = gradio_internals.waiting_events(self.blocks) + gradio_internals.running_events(self.blocks)
        return sum(1 for e in events if self._is_turn(e) and client_of_event(e) == client)

    def turns_running(self) -> int:
        """Chat turns gradio runs now, of every client (the page's and ``/chat``'s)."""
        return sum(1 for e in gradio_internals.running_events(self.blocks) if self._is_turn(e))

    def _is_turn(self, event: Any) -> bool:
        return gradio_internals.fn_id(event) in self.turn_fn_indices

    def client_of_request(self, scope: Scope) -> str:
        """``user:NAME`` when the request carries a valid login cookie, else ``addr:HOST``."""
        cookies = [(key, token) for name, value in scope.get("headers") or [] if name == b"cookie"
                   for key, _, token in (part.strip().partition("=") for part in value.decode("latin-1").split(";"))]
        login = gradio_internals.login_of(self.blocks, cookies)
        return client_key(login, address_of(scope))

    # --- queued turns whose stream never opened ---------------------------------------------------------------

    def start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.settings.stream_grace_s / 2))
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.debug("sweeping unopened turns failed", exc_info=True)

    async def sweep(self) -> None:
        """Drop queued turns whose event stream was not open ``stream_grace_s`` after they joined."""
        now, grace = time.monotonic(), self.settings.stream_grace_s
        stale = []
        for event in gradio_internals.waiting_events(self.blocks):
            joined = gradio_internals.enqueue_time(event)
            if now - joined < grace:
                continue
            if not (self.streams.is_open(event.session_hash, since=joined - 1.0)
                    or self.streams.is_open(gradio_internals.event_id(event), since=joined - 1.0)):
                stale.append(event)
        for event in stale:
            await gradio_internals.drop_waiting(self.blocks, event)
        if stale:
            self.dropped += len(stale)
            log.warning("dropped %d queued turn%s whose event stream was never opened", len(stale),
                        "s" if len(stale) != 1 else "")

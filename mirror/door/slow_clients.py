"""Deadlines for clients that are slow on purpose: a request trickled in, a reply never read.

Why at the HTTP protocol: uvicorn (as gradio starts it, with h11) arms no timer on a new connection until a
first response is complete (``timeout_keep_alive`` applies only between requests), never limits how long a
request body may take, and waits for a client that stops reading for as long as the client likes. One process
has a few thousand sockets, so a handful of such clients could hold every connection the app has. A middleware
cannot help: it sees nothing before the headers are complete.

``SlowClientProtocol`` is uvicorn's own ``H11Protocol`` with three timers (``limit_s`` is ``--slow-client-timeout``):

- request: from the connection's start (or the end of the previous response), the request's headers and body
  must have arrived within ``limit_s``, plus one second per ``MIN_RATE`` bytes received (an upload over a slow
  but honest link keeps going; a trickle of a byte a second does not). Headers alone get at most ``2 * limit_s``.
  When the app itself is not reading (uvicorn paused reading: the app is busy), the clock waits for it.
  Over the deadline: ``408`` (if no request has started yet) and the connection is closed;
- unread reply: when the client stops reading and the app's writes pile up (uvicorn paused writing) for
  ``limit_s``, the connection is reset (``SO_LINGER`` 0, so the kernel lets go of the unsent bytes too); the app's
  handler sees a disconnect;
- idle keep-alive: uvicorn's ``timeout_keep_alive`` (5 s) stays as it is.

The h11 limit on a request's head stays at uvicorn's 16 KiB (a larger head gets 400). gradio builds its uvicorn
config itself, so ``install(limit_s)`` (before the launch) points uvicorn's ``"auto"`` protocol at this one, and
``installed(server)`` checks the running server took it. Each drop is one log line with the client's address.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import Any, ClassVar

import h11
from uvicorn import config as uvicorn_config
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MIN_RATE = 500  # bytes a second a sending client must keep up beyond the first limit_s (as Apache's reqtimeout)
TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
               b"content-length: 44\r\n\r\nThe request took too long to arrive; retry.\n")


class SlowClientProtocol(H11Protocol):
    """uvicorn's h11 protocol with the request and unread-reply deadlines (see the module's docstring)."""

    limit_s: ClassVar[float] = 20.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._request_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._phase: tuple[Any, int] | None = None
        self._phase_start = time.monotonic()
        self._phase_bytes = 0
        self._cycles = 0
        self._watch_request()

    def data_received(self, data: bytes) -> None:
        self._phase_bytes += len(data)
        super().data_received(data)
        self._watch_request()

    def on_response_complete(self) -> None:
        self._cycles += 1
        super().on_response_complete()
        self._watch_request()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limit_s, self._unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._request_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._request_timer = self._write_timer = None
        super().connection_lost(exc)

    # --- the request deadline -------------------------------------------------------------------------------

    def _receiving(self) -> bool:
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _deadline(self) -> float:
        allowance = self.limit_s + self._phase_bytes / MIN_RATE
        if self.conn.their_state is h11.IDLE:
            allowance = min(allowance, 2 * self.limit_s)
        return self._phase_start + allowance

    def _watch_request(self) -> None:
        """(Re)arm the request timer for the state the client is in; a new state starts a new allowance."""
        if self.transport is None or self.transport.is_closing():
            return
        phase = (self.conn.their_state, self._cycles)
        if phase != self._phase:
            self._phase, self._phase_start, self._phase_bytes = phase, time.monotonic(), 0
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None
        if self._receiving():
            delay = max(0.05, self._deadline() - time.monotonic())
            self._request_timer = self.loop.call_later(delay, self._request_due)

    def _request_due(self) -> None:
        self._request_timer = None
        if self.transport.is_closing() or not self._receiving():
            return
        if self.flow.read_paused or time.monotonic() < self._deadline():
            self._request_timer = self.loop.call_later(1.0, self._request_due)  # the app is slow, or bytes came
            return
        head = self.conn.their_state is h11.IDLE
        log.warning("dropped a slow client %s: its request %s did not arrive in time (%d bytes)",
                    _who(self.client), "head" if head else "body", self._phase_bytes)
        if head and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(TIMEOUT_408)
            self.transport.close()
        else:
            _reset(self.transport)

    # --- the unread reply -----------------------------------------------------------------------------------

    def _unread(self) -> None:
        self._write_timer = None
        if self.transport.is_closing():
            return
        log.warning("dropped a client %s that left its reply unread for %.0f s", _who(self.client), self.limit_s)
        _reset(self.transport)


def _reset(transport: asyncio.Transport) -> None:
    """Drop the connection with a TCP reset: without ``SO_LINGER`` 0 the kernel would keep the unread reply (up to
    megabytes) and keep trying to deliver it after the close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _who(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"


def install(limit_s: float) -> None:
    """Before the app launches: every uvicorn server this process starts with ``http="auto"`` (gradio's) uses
    ``SlowClientProtocol`` with ``limit_s``, from its first connection on (uvicorn looks the protocol up in
    ``uvicorn.config.HTTP_PROTOCOLS`` when its config loads)."""
    SlowClientProtocol.limit_s = float(limit_s)
    uvicorn_config.HTTP_PROTOCOLS["auto"] = f"{__name__}:SlowClientProtocol"


def installed(server: Any) -> bool:
    """After the launch: whether gradio's server uses the deadlines (a warning is logged when it does not)."""
    config = getattr(server, "config", None)
    ok = config is not None and issubclass(getattr(config, "http_protocol_class", object), SlowClientProtocol)
    if not ok:
        log.warning("slow-client deadlines are off: the server does not use uvicorn's h11 protocol")
    return ok

"""A small TCP proxy on 127.0.0.1 that tests put between the bridge and the stand-in, to break the network
in ways a server cannot break itself.

It runs its own event loop in a daemon thread, so its sockets and tasks never mix with the test's own loop
(the tests count that loop's tasks), and a test that blocks cannot starve it. Behaviours, switched at run
time with ``set(mode, ...)``:

``pass``     forward both ways untouched (the default).
``refuse``   stop listening (new connections get ECONNREFUSED) and drop any connection that sends a new
             request, as a server that went away does; ``set("pass")`` listens again on the same port.
``stall``    take the request and never answer it (``after=N``: forward N bytes of the response, then go
             silent); the connection stays open until the client gives up.
``cut``      forward ``after`` bytes of the response, then reset the connection (a stream cut mid-reply).
``slow``     forward the response ``piece`` bytes at a time, sleeping ``delay`` seconds between pieces.
``garbage``  forward ``after`` bytes of the response, then insert ``data`` (arbitrary bytes), then carry on.

A behaviour applies per *request*, decided when the request's first bytes arrive and only if its request
line contains ``match`` (when given), from the request after the first ``skip`` such (which pass): a keep-alive
connection whose request came before the switch (such as another visitor's stream already running) is left alone.
``requests`` lists the request lines seen; ``open_connections`` counts the client connections still open. With
``capture=True`` every byte either way is kept in ``captured`` (a list of ``(direction, bytes)``, direction
``"request"`` or ``"response"``).

    with TcpProxy(standin_port) as proxy:
        proxy.set("cut", after=600, match="/gradio_api/queue/data")
        ...
        proxy.set("pass")
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

MODES = ("pass", "refuse", "stall", "cut", "slow", "garbage")
_METHODS = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ")


@dataclass(frozen=True)
class Behaviour:
    mode: str = "pass"
    match: str | None = None
    after: int | None = None
    piece: int = 1
    delay: float = 0.001
    data: bytes = b"\x00\xff garbage \xfe\r\n\r\n{{{"
    skip: int = 0


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    sent: int = 0  # response bytes forwarded since the current request began
    stalled: bool = False
    injected: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.transport.abort()


class TcpProxy:
    """``TcpProxy(upstream_port)``; ``.url`` is ``http://127.0.0.1:<port>``. Use as a context manager."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0,
                 capture: bool = False) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.capture = capture
        self.captured: list[tuple[str, bytes]] = []
        self.port = port
        self.behaviour = Behaviour()
        self._skip = 0  # matching requests still to let through before the behaviour applies
        self.requests: list[str] = []
        self.connections_total = 0
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    # ---- control (from any thread) ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    @property
    def stalled_connections(self) -> int:
        return sum(1 for c in list(self._conns) if c.stalled)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def set(self, mode: str, *, match: str | None = None, after: int | None = None, piece: int = 1,
            delay: float = 0.001, data: bytes | None = None, skip: int = 0) -> None:
        """Switch behaviour for requests from now on (see the module docstring)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if mode in ("cut", "garbage") and after is None:
            after = 0
        behaviour = Behaviour(mode, match, after, max(piece, 1), delay, data if data is not None else
                              Behaviour.data, skip)
        self._call(self._switch(behaviour))

    def reset(self) -> None:
        """Back to ``pass``, dropping connections that are still stalled."""
        self.set("pass")
        self._call(self._drop_stalled())

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ---- loop side ------------------------------------------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _switch(self, behaviour: Behaviour) -> None:
        refusing = self.behaviour.mode == "refuse"
        self.behaviour, self._skip = behaviour, behaviour.skip
        if behaviour.mode == "refuse" and not refusing and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif behaviour.mode != "refuse" and self._server is None:
            await self._listen()

    async def _drop_stalled(self) -> None:
        for conn in list(self._conns):
            if conn.stalled:
                conn.abort()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(client=writer)
        self.connections_total += 1
        self._conns.add(conn)
        try:
            try:
                up_reader, conn.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            to_up = asyncio.create_task(self._client_to_upstream(conn, reader))
            to_client = asyncio.create_task(self._upstream_to_client(conn, up_reader))
            done, _ = await asyncio.wait({to_up, to_client}, return_when=asyncio.FIRST_COMPLETED)
            if to_client in done and conn.stalled and not to_up.done():
                await asyncio.wait({to_up})  # a stalled request: hold the client until it gives up
            for task in (to_up, to_client):
                task.cancel()
            await asyncio.gather(to_up, to_client, return_exceptions=True)
        finally:
            conn.abort()
            self._conns.discard(conn)

    def _new_request(self, conn: _Conn, chunk: bytes) -> bool:
        """A request starts: pick its behaviour. False when the connection must be dropped (refuse)."""
        line = chunk.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        self.requests.append(line)
        behaviour = self.behaviour
        if behaviour.match is not None and behaviour.match not in line:
            behaviour = Behaviour()
        elif self._skip > 0:
            self._skip -= 1
            behaviour = Behaviour()
        conn.behaviour, conn.sent, conn.injected = behaviour, 0, False
        if behaviour.mode == "refuse":
            return False
        if behaviour.mode == "stall":
            conn.stalled = behaviour.after is None or behaviour.after <= 0
        return True

    async def _client_to_upstream(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        assert conn.upstream is not None
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            if chunk.startswith(_METHODS) and not self._new_request(conn, chunk):
                conn.abort()
                return
            if conn.stalled:
                continue  # swallowed: the request never reaches the server
            if self.capture:
                self.captured.append(("request", chunk))
            conn.upstream.write(chunk)
            await conn.upstream.drain()

    async def _upstream_to_client(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            if conn.stalled:
                continue
            b = conn.behaviour
            if b.mode in ("cut", "stall", "garbage") and b.after is not None:
                room = max(b.after - conn.sent, 0)
                if len(chunk) > room:
                    head, tail = chunk[:room], chunk[room:]
                    await self._write(conn, head)
                    if b.mode == "cut":
                        conn.abort()
                        return
                    if b.mode == "stall":
                        conn.stalled = True
                        continue
                    if not conn.injected:  # garbage
                        conn.injected = True
                        conn.client.write(b.data)
                    await self._write(conn, tail)
                    continue
            elif b.mode == "garbage" and not conn.injected:
                conn.injected = True
                conn.client.write(b.data)
            if b.mode == "slow":
                for start in range(0, len(chunk), b.piece):
                    await self._write(conn, chunk[start:start + b.piece])
                    await asyncio.sleep(b.delay)
                continue
            await self._write(conn, chunk)

    async def _write(self, conn: _Conn, data: bytes) -> None:
        if data:
            if self.capture:
                self.captured.append(("response", data))
            conn.sent += len(data)
            conn.client.write(data)
            await conn.client.drain()

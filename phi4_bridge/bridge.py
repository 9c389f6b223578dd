"""``Phi4Bridge``: the async client of the Phi-4 Space. It holds what every turn shares (one aiohttp session, the
ZeroGPU tokens, the Space's chat chain read once from ``/config``); a turn itself is a ``Job`` (``job.py``).

    async with Phi4Bridge(BridgeConfig.from_env()) as bridge:
        conversation = bridge.conversation()
        async with bridge.submit("What is in this picture?", files=["cat.png"], conversation=conversation) as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    print(event.text, end="")

Leaving a job early (break, Stop, task cancelled) cancels it on the Space.

A private Space (``config.private_origin``, set by ``spaces.resolve`` when the Hub says the Space is private and the
user's HF token can see it) gets ``Authorization: Bearer <HF token>`` on every request to that origin and no other
(an aiohttp client middleware); a public Space never gets it. A Space that refuses the bridge's first request with
401/403/404 is explained in the Hub's words (private, not found, token refused); when the Hub then says the Space is
private and visible to the user's token, at the origin in use, the bridge sends the token and tries once more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from ._wire import protocol
from ._wire.token import TokenProvider
from .chain import Chain, Option
from .config import BridgeConfig
from .errors import AuthError, Phi4Error, ProtocolError, SpaceUnavailable, StreamTimeout, UnavailableState
from .job import Job
from .media import MediaFile
from .messages import FileData

log = logging.getLogger(__name__)
FilePath = str | os.PathLike[str]
T = TypeVar("T")


@dataclass
class Conversation:
    """One conversation with the Space, as its page would hold it: ONE session hash for its whole life (the
    Space keeps its ``gr.State`` values under it), the value of every component after the last turn, and for
    each turn done its key and the chatbot's length after it, so a caller's history that repeats what was done
    (Retry, Edit, Undo) is restored without asking the Space again. Also the files the Space already holds."""

    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    space_url: str | None = field(default=None, repr=False)  # the Space the state below belongs to
    chatbot: int | None = field(default=None, repr=False)  # which of ``values`` is the Space's chatbot
    values: dict[int, Any] = field(default_factory=dict, repr=False)
    done: list[tuple[tuple[Any, ...], int]] = field(default_factory=list, repr=False)  # (turn key, chat length)
    uploaded: dict[str, FileData] = field(default_factory=dict, repr=False)  # sha256 -> the Space's FileData
    inspected: dict[tuple[str, int, int], MediaFile] = field(default_factory=dict, repr=False)

    @property
    def history(self) -> list[Any]:
        """The Space's chatbot value after the last turn, exactly as the Space returned it."""
        value = self.values.get(self.chatbot) if self.chatbot is not None else None
        return list(value) if isinstance(value, list) else []

    def belongs_to(self, space_url: str) -> None:
        """Forget what another Space held (the app can switch Spaces while a conversation lives)."""
        if self.space_url != space_url:
            self.space_url, self.values, self.done, self.uploaded = space_url, {}, [], {}


async def _resend_on_stale_connection(request: aiohttp.ClientRequest,
                                     handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """A POST sent on a pooled keep-alive connection that the Space closed meanwhile (it restarted, or dropped the
    idle socket first) fails before any answer came back. A browser sends such a request again on a new connection;
    so does the bridge, once. aiohttp does it by itself only for idempotent methods, and the chain's first request of
    a turn may be a POST (a user step run by ``/run/predict``). Only a body held in memory is sent again."""
    try:
        return await handler(request)
    except aiohttp.ServerDisconnectedError:
        if request.method != "POST" or not isinstance(request.body, aiohttp.payload.BytesPayload):
            raise
        log.info("the Space closed a pooled connection before answering %s; sending it again", request.url.path)
        return await handler(request)


class Phi4Bridge:
    """The async client of the Phi-4 Space: use as ``async with Phi4Bridge(config) as bridge``."""

    def __init__(self, config: BridgeConfig | None = None, *, session: aiohttp.ClientSession | None = None,
                 trace_configs: Sequence[aiohttp.TraceConfig] = ()) -> None:
        """``trace_configs`` watch every request of the bridge's own session (``doctor`` records them)."""
        self.config = (config or BridgeConfig.from_env()).normalised()
        self._own_session = session is None
        self._trace_configs = list(trace_configs)
        self._session = session
        self._tokens: TokenProvider | None = None
        self._chain: Chain | None = None
        self._chain_lock = asyncio.Lock()
        self._hf_token: str | None = None  # looked up only for a private Space (see ``_authorize``)
        self._auth_origin: str | None = None  # requests to this origin carry the user's HF token

    def __repr__(self) -> str:
        return f"Phi4Bridge(space={self.config.space!r}, space_url={self.config.space_url!r})"

    async def __aenter__(self) -> Phi4Bridge:
        if self._session is None:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=t.request, connect=t.connect, sock_connect=t.connect),
                # Idle connections are dropped before uvicorn's 5 s keep-alive closes them under us, which would
                # fail a POST that cannot be retried.
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=4.0),
                headers={"referer": f"{self.config.space_url}?__theme=light"},
                middlewares=(self._space_auth, _resend_on_stale_connection),
                trace_configs=self._trace_configs or None)
        self._tokens = TokenProvider(self.config, self._session)
        if self.config.private_origin:
            await self._authorize(self.config.private_origin)
        return self

    async def _authorize(self, origin: str) -> bool:
        """Send the user's HF token to ``origin`` (the private Space's, as the Hub gives it) from now on."""
        self._hf_token = await self.tokens.hf_token()
        self._auth_origin = origin if self._hf_token else None
        return self._auth_origin is not None

    async def _space_auth(self, request: aiohttp.ClientRequest,
                          handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        """The client middleware: the HF token on requests to the private Space's origin, on no others."""
        if self._auth_origin and self._hf_token and "Authorization" not in request.headers:
            from .hub import same_origin

            if same_origin(str(request.url), self._auth_origin):
                request.headers["Authorization"] = f"Bearer {self._hf_token}"
        return await handler(request)

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
               ip_token: str | None = None, options: Mapping[str, Any] | None = None) -> Job:
        """Start a turn. ``history`` (either chatbot shape) is the conversation so far as the caller keeps it;
        without it the conversation goes on from its last turn. ``options`` set the Space's own controls for
        this turn by name (``await bridge.options()`` lists them). ``ip_token`` is a visitor's ``x-ip-token``,
        forwarded so their own ZeroGPU quota is used."""
        return Job(self, prompt, [os.fspath(f) for f in files], history, conversation or Conversation(),
                   ip_token, dict(options or {}))

    async def chat(self, prompt: str, files: Sequence[FilePath] = (), **kwargs: Any) -> str:
        """One turn, the whole reply at once."""
        async with self.submit(prompt, files, **kwargs) as job:
            return await job.result()

    async def chain(self) -> Chain:
        """The Space's chat chain, read from its ``/config`` once."""
        if self._chain is None:
            async with self._chain_lock:
                if self._chain is None:
                    self._chain = await self._discover()
        return self._chain

    async def _discover(self) -> Chain:
        """``/config``; a 401/403/404 is said in the Hub's words, and a private Space the Hub shows to the user's
        token at this very origin is asked once more with the token."""
        try:
            return await self.guard(protocol.discover(self.session, self.config))
        except (AuthError, SpaceUnavailable) as exc:
            status = refused_status(exc)
            if status is None:
                raise
            sent = self._auth_origin is not None
            origin = await self._explain_refusal(status, sent, exc)
            if origin is None or not await self._authorize(origin):
                raise
            log.info("%s is private and the Hub shows it to your HF token: asking it with the token",
                     self.config.space)
            return await self._discover()

    async def _explain_refusal(self, status: int, sent: bool, exc: Phi4Error) -> str | None:
        """Ask the Hub why the Space refused (``hub.space_view``: ``GET {hub}/api/spaces/{id}``, on this bridge's own
        session): raise its words when it does not show the Space to us; return the private Space's origin when it
        does and the token was not sent yet; None when the Hub has nothing to add (the Space's own error stands)."""
        from .hub import SpaceState, same_origin, space_view

        cfg = self.config
        token = await self.tokens.hf_token()
        try:
            view = await space_view(self.session, cfg, token)
        except (TimeoutError, aiohttp.ClientError) as err:
            log.info("could not ask the Hub why the Space refused (%s)", type(err).__name__)
            return None
        if view.problem is not None:
            words = SpaceState(cfg.space, problem=view.problem).sentence()
            raise SpaceUnavailable(f"The Space answered HTTP {status}: {words}", state=UnavailableState(view.problem),
                                   status=status) from exc
        if not view.private:
            return None
        if sent:
            raise AuthError(f"The Space answered HTTP {status}: {cfg.space} is private and the Hub shows it to your "
                            "Hugging Face token, but the Space refused it. Check HF_TOKEN or run `huggingface-cli "
                            "login` again.", status=status) from exc
        host = view.host
        return host if token and host and same_origin(cfg.space_url, host) else None

    async def options(self) -> dict[str, Option]:
        """The Space's own controls (sliders, dropdowns, a system prompt and the like among its chain's inputs),
        by name."""
        return (await self.chain()).options

    async def guard(self, coro: Awaitable[T]) -> T:
        """Network failures become ``SpaceUnavailable`` with a reason a person can read."""
        try:
            return await coro
        except TimeoutError as exc:  # before ClientConnectionError: aiohttp's timeouts are both
            raise StreamTimeout(f"The Space at {self.config.space_url} did not answer in time "
                                f"({self.config.timeouts.request:.0f} s); it may be overloaded. Retry later.") from exc
        except aiohttp.ClientConnectionError as exc:
            raise SpaceUnavailable(f"Cannot reach the Space at {self.config.space_url} "
                                   f"({type(exc).__name__}); check the network or the URL.") from exc
        except aiohttp.ClientPayloadError as exc:
            raise SpaceUnavailable("The connection to the Space broke mid-answer; retry.",
                                   state=UnavailableState.DROPPED) from exc
        except aiohttp.ClientError as exc:  # a garbled answer: bad status line, headers or encoding
            raise ProtocolError(f"The Space sent an answer that is not valid HTTP ({type(exc).__name__}).") \
                from exc


def refused_status(error: Phi4Error) -> int | None:
    """The HTTP status of a Space's refusal (401/403 as ``AuthError``, 404 as ``not_found``), else None."""
    if isinstance(error, SpaceUnavailable):
        return 404 if error.state is UnavailableState.NOT_FOUND else None
    if isinstance(error, AuthError) and error.status in (401, 403):
        return error.status
    return None

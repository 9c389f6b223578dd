"""One origin serving both the stand-in Space (gradio) and the Hub side (token page, JWT endpoint).

Why: the real setup has two hosts (huggingface.co for tokens, *.hf.space for the Space); tests and the app
point both at this one loopback origin. Routes besides gradio's own ``/config`` and ``/gradio_api/*``:

Hub side (the stand-in's own space id configurable, default ``microsoft/phi-4-multimodal``; every Space of the
Hub catalogue, ``standin/hub.py``, gets these too, so a second stand-in can be another Space of the same Hub: start
both with the same ``--token-secret``, as every real Space trusts the Hub's tokens):
  ``GET  /api/spaces/{id}/runtime``, ``/host``, ``/api/spaces/{id}``, ``/api/spaces?search=``: see ``hub.py``.
  ``GET  /spaces/{space}``  HTML page embedding HTML-escaped JSON with ``&quot;token&quot;:&quot;<JWT>&quot;``
        and ``&quot;sessionUuid&quot;:&quot;<uuid>&quot;`` (anonymous token). Fault ``sleeping``: the page says
        the Space is sleeping (HTTP 200); ``not_found``: 404.
  ``GET  /api/spaces/{space}/jwt?expiration=...&include_pro_status=true`` with ``Authorization: Bearer hf_...``
        → ``{"token", "exp", "accessToken": null, "isPro": false, "user"}``; other or no token → 401;
        fault ``not_found`` → 404.

Control (never affected by faults):
  ``POST /standin/reset``                     quotas, counters, stamps and fault cleared; config and the
                                              Hub catalogue back to the startup values
  ``GET|POST /standin/hub``                   the Hub catalogue (see ``hub.py``)
  ``GET  /standin/stats``                     counters (see ``zerogpu.Stats``) plus ``tokens_seen``
  ``GET  /standin/stamps?session_hash=h``     ``[[unix_time, cumulative_reply_chars], ...]`` per chunk
  ``GET  /standin/seen?session_hash=h``       what that session's last bot step received (``null`` if none):
                                              ``{"layout", "fn", "prompt", "files": [paths], "earlier_turns",
                                              "seen": [{"turn", "kind", "value", "described"}], "settings":
                                              {name: value}, "inputs": {...}}``; without ``session_hash``:
                                              ``{session_hash: record}`` for every session
  ``GET|POST /standin/fault``                 ``{"fault": name|null, "times": int|null}`` (``says`` also takes
                                              ``"title"`` and ``"text"``: a ZeroGPU error worded as given)
  ``GET|POST /standin/config``                ``{"pace_ms", "chunks", "slow_start_s", "drop_after",
                                              "quota_seconds", "anon_quota_seconds", "gpu_seconds_per_call",
                                              "quota_window", "token_ttl", "layout"}`` (POST: any subset
                                              but ``layout``, which is fixed at start: ``--layout``)

Errors as a Space started by ``launch()`` shows them (``show_error`` off): a ``gr.Error`` reaches the caller
with its text and title; any other exception is ``{"error": null}`` (the "failed without saying why" case).
gradio's ``api_open`` is off, as on a real Space: ``/run/predict`` on a queued dependency answers 404 "This API
endpoint does not accept direct HTTP POST requests. Please join the queue to use this API."
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from .hub import Catalogue, HubSpace, add_hub_catalogue_routes, parse_hub_space, refusal
from .middleware import StandinMiddleware
from .space import DEFAULT_LAYOUT, Tunables, build_blocks
from .zerogpu import TokenIssuer, ZeroGPU, user_from_hf_token

# The Space it plays: its own constant, not the bridge's DEFAULT_SPACE, since the stand-in imports nothing of the
# bridge (tests/test_standin.py checks that the two agree).
SPACE_ID = "microsoft/phi-4-multimodal"


@dataclass
class StandinSettings:
    """Everything the CLI can set."""

    host: str = "127.0.0.1"
    port: int = 7861
    pace_ms: float = 20.0
    chunks: int = 12
    fault: str | None = None
    gpus: int = 2
    queue_size: int | None = None  # gradio's queue max_size: past it a join gets HTTP 503 "Queue is full."
    quota_seconds: float = 300.0
    anon_quota_seconds: float = 60.0
    token_ttl: float = 600.0
    gpu_seconds_per_call: float = 1.0
    quota_window: float = 600.0
    slow_start_s: float = 5.0
    drop_after: int = 3
    space_id: str = SPACE_ID
    layout: str = DEFAULT_LAYOUT
    hub_spaces: tuple[str, ...] = ()  # ``ID=STAGE[@URL]`` entries of the Hub catalogue
    token_secret: str | None = None  # hex; shared by stand-ins that act as one Hub and its Spaces
    private_allow: tuple[str, ...] = ()  # non-empty: its own Space is private, these Bearer tokens may call it


def build_catalogue(settings: StandinSettings) -> Catalogue:
    """The stand-in's own Space RUNNING at its own origin, then the ``--hub-space`` entries (which may override)."""
    entries = {settings.space_id: HubSpace(settings.space_id, "RUNNING", f"http://{settings.host}:{settings.port}",
                                           private=bool(settings.private_allow), allow=list(settings.private_allow))}
    for text in settings.hub_spaces:
        entry = parse_hub_space(text)
        entries[entry.id] = entry
    return Catalogue(list(entries.values()))


def _hub_page(space_id: str, token: str, session_uuid: str, sleeping: bool) -> str:
    """A Hub-like Space page: the props JSON sits HTML-escaped in an attribute, as on huggingface.co."""
    props = {
        "space": {"id": space_id, "runtime": {"stage": "SLEEPING" if sleeping else "RUNNING"}},
        "token": token,
        "sessionUuid": session_uuid,
    }
    escaped = html.escape(json.dumps(props, separators=(",", ":")), quote=True)
    note = "This Space is sleeping due to inactivity." if sleeping else "Running on ZeroGPU (stand-in)."
    return (
        "<!doctype html><html><head><title>" + html.escape(space_id) + "</title></head><body>"
        f'<div class="SVELTE_HYDRATER contents" data-target="SpacePageInner" data-props="{escaped}"></div>'
        f"<p>{note}</p></body></html>"
    )


def _add_hub_routes(app: FastAPI, settings: StandinSettings, zgpu: ZeroGPU, catalogue: Catalogue) -> None:
    own = settings.space_id

    def known(space: str) -> bool:
        return space == own or catalogue.get(space) is not None

    def private_refused(space: str, authorization: str) -> bool:
        """A private Space of the catalogue that this ``Authorization`` header may not see."""
        entry = catalogue.get(space)
        return entry is not None and refusal(entry, authorization) is not None

    @app.get("/spaces/{owner}/{name}")
    async def hub_page(owner: str, name: str, request: Request) -> HTMLResponse:
        space = f"{owner}/{name}"
        if not known(space):
            return HTMLResponse("<html><body>404: Space not found</body></html>", status_code=404)
        if private_refused(space, request.headers.get("authorization", "")):
            return HTMLResponse("<html><body>404: Space not found</body></html>", status_code=404)
        zgpu.bump("token_page_fetches")
        fault = zgpu.peek_fault() if space == own else None
        if fault == "not_found":
            zgpu.take_fault(frozenset({"not_found"}))
            return HTMLResponse("<html><body>404: Space not found</body></html>", status_code=404)
        session_uuid = zgpu.new_session_uuid()
        token, _ = zgpu.issuer.issue("anonymous", f"anonymous-{session_uuid}", uuid=session_uuid)
        return HTMLResponse(_hub_page(space, token, session_uuid, sleeping=fault == "sleeping"))

    @app.get("/api/spaces/{owner}/{name}/jwt")
    async def jwt(owner: str, name: str, request: Request) -> JSONResponse:
        if not known(f"{owner}/{name}"):
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        zgpu.bump("jwt_fetches")
        if f"{owner}/{name}" == own and zgpu.peek_fault() == "not_found":
            zgpu.take_fault(frozenset({"not_found"}))
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        auth = request.headers.get("authorization", "")
        hf_token = auth[len("Bearer ") :].strip() if auth.lower().startswith("bearer ") else ""
        if not hf_token.startswith("hf_"):
            return JSONResponse({"error": "Invalid credentials in Authorization header"}, status_code=401)
        if private_refused(f"{owner}/{name}", auth):
            return JSONResponse({"error": "Repository not found"}, status_code=404)
        user = user_from_hf_token(hf_token)
        token, exp = zgpu.issuer.issue("user", user)
        return JSONResponse({"token": token, "exp": exp, "accessToken": None, "isPro": False, "user": user})


def _add_control_routes(app: FastAPI, zgpu: ZeroGPU, tunables: Tunables, layout: str, catalogue: Catalogue) -> None:
    startup = _current_config(zgpu, tunables)

    @app.post("/standin/reset")
    async def reset() -> dict[str, Any]:
        zgpu.reset()
        catalogue.reset()
        _apply_config(zgpu, tunables, startup)
        return {"ok": True, "config": startup}

    @app.get("/standin/stats")
    async def stats() -> dict[str, Any]:
        return zgpu.stats.as_json()

    @app.get("/standin/stamps")
    async def stamps(session_hash: str) -> list[list[float]]:
        return zgpu.stamps.get(session_hash, [])

    @app.get("/standin/seen")
    async def seen(session_hash: str | None = None) -> Any:
        return zgpu.seen.get(session_hash) if session_hash is not None else dict(zgpu.seen)

    @app.get("/standin/fault")
    async def get_fault() -> dict[str, Any]:
        return zgpu.fault_state()

    @app.post("/standin/fault")
    async def set_fault(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            zgpu.set_fault(body.get("fault"), body.get("times"), body.get("title"), body.get("text"))
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(zgpu.fault_state())

    @app.get("/standin/config")
    async def get_config() -> dict[str, Any]:
        return {**_current_config(zgpu, tunables), "layout": layout}

    @app.post("/standin/config")
    async def set_config(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            _apply_config(zgpu, tunables, body)
        except (TypeError, ValueError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({**_current_config(zgpu, tunables), "layout": layout})


ZEROGPU_SETTINGS = ("quota_seconds", "anon_quota_seconds", "gpu_seconds_per_call", "quota_window")


def _current_config(zgpu: ZeroGPU, tunables: Tunables) -> dict[str, Any]:
    config = asdict(tunables)
    config.update({name: getattr(zgpu, name) for name in ZEROGPU_SETTINGS})
    config["token_ttl"] = zgpu.issuer.ttl
    return config


def _apply_config(zgpu: ZeroGPU, tunables: Tunables, body: dict[str, Any]) -> None:
    """Set run-time settings by name; ValueError (nothing changed) when one is unknown."""
    known = {f.name for f in fields(tunables)} | set(ZEROGPU_SETTINGS) | {"token_ttl"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(known)}")
    for name, value in body.items():
        if name == "token_ttl":
            zgpu.issuer.ttl = float(value)
        elif name in ZEROGPU_SETTINGS:
            setattr(zgpu, name, float(value))
        else:
            setattr(tunables, name, type(getattr(tunables, name))(value))


def build_app(settings: StandinSettings) -> tuple[Any, ZeroGPU, Tunables]:
    """The ASGI app to serve (middleware around FastAPI with gradio mounted at the root)."""
    zgpu = ZeroGPU(
        token_ttl=settings.token_ttl,
        quota_seconds=settings.quota_seconds,
        anon_quota_seconds=settings.anon_quota_seconds,
        gpu_seconds_per_call=settings.gpu_seconds_per_call,
        quota_window=settings.quota_window,
        fault=settings.fault,
    )
    if settings.token_secret:
        zgpu.issuer = TokenIssuer(settings.token_ttl, bytes.fromhex(settings.token_secret))
    catalogue = build_catalogue(settings)
    tunables = Tunables(
        pace_ms=settings.pace_ms,
        chunks=settings.chunks,
        slow_start_s=settings.slow_start_s,
        drop_after=settings.drop_after,
    )
    app = FastAPI(title="Phi-4 Mirror stand-in Space")
    _add_hub_routes(app, settings, zgpu, catalogue)
    add_hub_catalogue_routes(app, catalogue)
    _add_control_routes(app, zgpu, tunables, settings.layout, catalogue)
    demo = build_blocks(zgpu, tunables, gpus=settings.gpus, layout=settings.layout)
    # gradio runs at most ``max_threads`` events at once (40 by default), whatever each step allows: room for every
    # GPU slot's bot step and as many user steps beside them, so ``--gpus 64`` means 64 replies at once
    demo.max_threads = max(40, 2 * settings.gpus + 8)
    demo.queue(default_concurrency_limit=max(settings.gpus, 1), api_open=False, max_size=settings.queue_size)
    # gradio's queue polls every 1 ms when idle (``Queue.sleep_when_free``, a private part): 5 % of a core for a
    # stand-in nobody uses, times every stand-in a test run keeps up. 10 ms, as the app (mirror/door/gradio_internals)
    demo._queue.sleep_when_free = 0.01
    app = gr.mount_gradio_app(
        app,
        demo,
        path="",
        server_name=settings.host,
        server_port=settings.port,
        ssr_mode=False,
        mcp_server=False,
        show_error=False,  # as ``launch()`` on a Space: only gr.Error texts reach callers, others are error: null
    )
    hub_prefixes = ("/spaces/", "/api/spaces")
    return StandinMiddleware(app, zgpu, tunables, hub_prefixes, catalogue, settings.space_id), zgpu, tunables

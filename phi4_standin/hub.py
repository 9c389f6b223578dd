"""The Hub's Space routes, offline: a catalogue of Spaces with stages set by flag and at run time.

What ``huggingface_hub.HfApi`` and ``gr.load`` call, with the JSON fields they parse:

  ``GET /api/spaces/{id}/runtime``  ``HfApi.get_space_runtime``: ``{"stage", "hardware": {"current",
        "requested"}, "gcTimeout", "errorMessage"?, "replicas"}``
  ``GET /api/spaces/{id}/host``     ``{"subdomain", "host"}`` (``gr.load``'s route to a Space's origin)
  ``GET /api/spaces/{id}``          ``HfApi.space_info``: ``{"id", "author", "likes", "sdk", "private",
        "subdomain", "host", "runtime", "cardData": {"sdk", "sdk_version", "title"}, "tags", "siblings"}``
  ``GET /api/spaces?search=&sort=likes&limit=``   ``HfApi.list_spaces``: the entries whose id contains
        ``search`` (case-insensitive), most liked first; private ones only for a token allowed to see them.

A private Space: without a Bearer token 401 (``X-Error-Code: RepoNotFound``, as the Hub answers); with a token it
does not allow, 404; with one it allows (``"allow": ["hf_..."]``), as a public one. An unknown id: 404. When the
stand-in's own Space (``--space-id``) is private, its Space routes (``/config``, ``/gradio_api/...``) answer the
same way (``middleware.py``), as a private Space's origin refuses a caller without the right Bearer token.

Set the catalogue with ``--hub-space ID=STAGE[@URL]`` (repeatable; URL: the Space's origin, default none) and at
run time with ``POST /standin/hub`` (``{"id", "stage", "host", "likes", "hardware", "requested_hardware",
"error_message", "sdk_version", "private", "allow"}``: upsert; ``{"remove": ID}``; ``{"reset": true}``) and
``GET /standin/hub`` (the whole catalogue). The stand-in's own Space (``--space-id``) starts RUNNING at its own
origin.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

STAGES = ("RUNNING", "RUNTIME_ERROR", "BUILDING", "BUILD_ERROR", "SLEEPING", "PAUSED", "STOPPED", "NO_APP_FILE",
          "CONFIG_ERROR", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING", "DELETING")
ERROR_STAGES = {"RUNTIME_ERROR": "Exit code: 1. Reason: CUDA out of memory (stand-in)",
                "BUILD_ERROR": "Build failed (stand-in)", "CONFIG_ERROR": "Invalid README front matter (stand-in)"}


@dataclass
class HubSpace:
    id: str
    stage: str = "RUNNING"
    host: str | None = None
    likes: int = 0
    hardware: str | None = "zero-a10g"
    requested_hardware: str | None = "zero-a10g"
    error_message: str | None = None
    sdk_version: str = "5.18.0"
    private: bool = False
    allow: list[str] = field(default_factory=list)

    @property
    def subdomain(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.id.lower()).strip("-")

    def runtime(self) -> dict[str, Any]:
        running = self.stage.startswith("RUNNING")
        out: dict[str, Any] = {"stage": self.stage,
                               "hardware": {"current": self.hardware if running else None,
                                            "requested": self.requested_hardware},
                               "gcTimeout": 172800, "replicas": {"current": 1 if running else 0, "requested": 1},
                               "devMode": False, "domains": [{"domain": f"{self.subdomain}.hf.space",
                                                              "stage": "READY"}]}
        message = self.error_message or ERROR_STAGES.get(self.stage)
        if message:
            out["errorMessage"] = message
        return out

    def info(self) -> dict[str, Any]:
        author = self.id.split("/")[0]
        return {"_id": self.subdomain, "id": self.id, "author": author, "likes": self.likes, "sdk": "gradio",
                "private": self.private, "disabled": False, "subdomain": self.subdomain, "host": self.host,
                "tags": ["gradio", "region:us"], "createdAt": "2025-02-27T00:00:00.000Z",
                "lastModified": "2025-03-01T00:00:00.000Z", "siblings": [{"rfilename": "app.py"}],
                "runtime": self.runtime(),
                "cardData": {"title": self.id.split("/")[-1], "sdk": "gradio", "sdk_version": self.sdk_version,
                             "app_file": "app.py"}}


def parse_hub_space(text: str) -> HubSpace:
    """``ID=STAGE[@URL]`` (the flag's form); ValueError naming the problem."""
    space, sep, rest = text.partition("=")
    stage, _, url = rest.partition("@")
    stage = stage.strip().upper()
    if not sep or "/" not in space or stage not in STAGES:
        raise ValueError(f"{text!r}: expected ID=STAGE[@URL] with STAGE one of {', '.join(STAGES)}")
    return HubSpace(id=space.strip(), stage=stage, host=url.strip().rstrip("/") or None)


class Catalogue:
    """The Spaces this Hub knows; thread-safe (the routes and the control route may race)."""

    def __init__(self, spaces: list[HubSpace]) -> None:
        self._lock = threading.Lock()
        self._startup = [HubSpace(**asdict(s)) for s in spaces]
        self.spaces: dict[str, HubSpace] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.spaces = {s.id: HubSpace(**asdict(s)) for s in self._startup}

    def get(self, space: str) -> HubSpace | None:
        with self._lock:
            return self.spaces.get(space)

    def upsert(self, body: dict[str, Any]) -> HubSpace:
        known = {f.name for f in fields(HubSpace)}
        unknown = sorted(set(body) - known)
        if unknown or not isinstance(body.get("id"), str) or "/" not in body["id"]:
            raise ValueError(f"a Space needs an 'id' (owner/name); known fields: {sorted(known)}; unknown: {unknown}")
        if "stage" in body and body["stage"] not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        with self._lock:
            entry = self.spaces.get(body["id"]) or HubSpace(id=body["id"])
            for name, value in body.items():
                setattr(entry, name, value.rstrip("/") if name == "host" and isinstance(value, str) else value)
            self.spaces[entry.id] = entry
            return entry

    def remove(self, space: str) -> None:
        with self._lock:
            self.spaces.pop(space, None)

    def entries(self) -> list[HubSpace]:
        with self._lock:
            return list(self.spaces.values())

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(s) for s in self.spaces.values()]


def bearer(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value ("" when there is none)."""
    return authorization[len("Bearer "):].strip() if authorization.lower().startswith("bearer ") else ""


def refusal(entry: HubSpace | None, authorization: str) -> tuple[int, str] | None:
    """None when a caller with this ``Authorization`` header may see ``entry``; else the Hub's status and words
    (401 without a token, 404 for a token the private Space does not allow, 404 for an unknown id)."""
    if entry is None:
        return 404, "Repository not found"
    if not entry.private:
        return None
    token = bearer(authorization)
    if not token:
        return 401, "Invalid username or password."
    return None if token in entry.allow else (404, "Repository not found")


def visible(entry: HubSpace | None, request: Request) -> JSONResponse | None:
    """None when the caller may see ``entry``; else the Hub's answer (401 without a token, 404 otherwise)."""
    refused = refusal(entry, request.headers.get("authorization", ""))
    if refused is None:
        return None
    status, words = refused
    return JSONResponse({"error": words}, status_code=status,
                        headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": words})


def add_hub_catalogue_routes(app: FastAPI, catalogue: Catalogue) -> None:
    def answer(space: str, request: Request, body: Callable[[HubSpace], dict[str, Any]]) -> JSONResponse:
        """The Hub's answer about one Space: ``body`` of its entry, or the refusal the caller gets."""
        entry = catalogue.get(space)
        refused = visible(entry, request)
        if refused is not None or entry is None:
            return refused or JSONResponse({"error": "Repository not found"}, status_code=404)
        return JSONResponse(body(entry))

    @app.get("/api/spaces")
    async def list_spaces(request: Request, search: str = "", limit: int = 1000) -> JSONResponse:
        found = [e for e in catalogue.entries() if search.lower() in e.id.lower() and visible(e, request) is None]
        found.sort(key=lambda e: -e.likes)
        return JSONResponse([e.info() for e in found[: max(limit, 0)]])

    @app.get("/api/spaces/{owner}/{name}/runtime")
    async def runtime(owner: str, name: str, request: Request) -> JSONResponse:
        return answer(f"{owner}/{name}", request, HubSpace.runtime)

    @app.get("/api/spaces/{owner}/{name}/host")
    async def host(owner: str, name: str, request: Request) -> JSONResponse:
        return answer(f"{owner}/{name}", request, lambda e: {"subdomain": e.subdomain, "host": e.host})

    @app.get("/api/spaces/{owner}/{name}")
    async def info(owner: str, name: str, request: Request) -> JSONResponse:
        return answer(f"{owner}/{name}", request, HubSpace.info)

    @app.get("/standin/hub")
    async def get_catalogue() -> list[dict[str, Any]]:
        return catalogue.listing()

    @app.post("/standin/hub")
    async def set_catalogue(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "a JSON object, please"}, status_code=400)
        if body.get("reset"):
            catalogue.reset()
        elif "remove" in body:
            catalogue.remove(str(body["remove"]))
        else:
            try:
                catalogue.upsert(body)
            except (ValueError, TypeError) as err:
                return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse(catalogue.listing())

"""The OpenAI-compatible API on the app's own server: ``/v1`` mounted on gradio's FastAPI app.

    serve(mirror.demo, settings, ..., routes=openai_routes(settings, mirror.runner, work))

Why through ``ChatService``: an API turn is a turn of the app like any other, so it obeys the same rules. Its
client is its key (``user:key:N``; without keys, its address, shared with that address's browser turns), limited
to ``--turns-per-client`` turns at once (the next gets 429); each request is its own visitor (it carries the
whole conversation); running turns are cancelled on the Space at shutdown. API turns also wait while the app
already runs ``--concurrency`` turns (the UI's included), so the API cannot push the Space past the app's limit.
The routes sit behind the door (``mirror.door.middleware``), which lets ``/v1`` through untouched; keys replace the
login: with ``--auth`` or ``--share`` and no ``--api-key`` the API refuses every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from starlette.routing import BaseRoute, Mount

from phi4_bridge import Event, Option
from phi4_bridge.openai_api.server import ApiSettings, Caller, build_api

from ..chat.handlers import ChatService
from ..door.cleanup import WorkDir
from ..door.guard import Guard
from ..settings import AppSettings
from ..visitors.identity import Visitor

WAIT_STEP_S = 0.05  # how often a waiting API turn looks again at the UI's running turns


class AppRunner:
    """API turns through the app's ``ChatService`` (see the module docstring)."""

    def __init__(self, chat: ChatService, settings: AppSettings, guard: Guard) -> None:
        self.chat, self.settings, self.guard = chat, settings, guard
        self.running = 0

    async def options(self) -> Mapping[str, Option]:
        return await (await self.chat.holder.get()).options()

    async def _slot(self) -> None:
        while True:  # the UI's turns end inside gradio's queue, which tells nobody: look again now and then
            if self.running + self.guard.turns_running() < self.settings.concurrency_total:
                break
            await asyncio.sleep(WAIT_STEP_S)
        self.running += 1  # no await between the check and the count: concurrent turns cannot all slip through

    async def events(self, caller: Caller, prompt: str, files: list[str], history: list[dict[str, Any]],
                     options: dict[str, Any], source: str = "v1") -> AsyncGenerator[Event, None]:
        """One turn of ``caller``; ``source`` names the surface in the Usage view ("v1", "mcp")."""
        visitor = Visitor.api(caller.name, caller.host, caller.ip_token)
        await self._slot()
        try:
            async for event in self.chat.events(visitor, prompt, files, history, options, source=source):
                yield event
        finally:
            self.running -= 1


def api_settings(settings: AppSettings, work: WorkDir | None = None) -> ApiSettings:
    """The keys and URL rules of the app's API surfaces (``/v1`` and the MCP tools): with ``--auth`` or
    ``--share`` and no ``--api-key`` they refuse everyone. A request's files go to ``work``'s upload folder (the
    app's own, removed at exit), else under the settings' ``temp_dir`` ($GRADIO_TEMP_DIR)."""
    return ApiSettings(keys=settings.api_keys, require_key=bool(settings.auth or settings.share),
                       fetch_image_urls=settings.fetch_image_urls, limits=settings.bridge.limits,
                       temp_dir=str(work.uploads) if work else settings.temp_dir)


def openai_routes(settings: AppSettings, runner: AppRunner, work: WorkDir | None = None) -> list[BaseRoute]:
    """``/v1`` for gradio's app (``launch(app_kwargs={"routes": ...})``). ``runner`` is the app's one
    ``AppRunner``, shared with the MCP tools so that ``--concurrency`` counts the turns of both; ``work``: the app's
    work folder (see ``api_settings``)."""
    return [Mount("/v1", app=build_api(runner, api_settings(settings, work)))]

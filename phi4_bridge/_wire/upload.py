"""Upload: check every file of a turn, then send the new ones in one multipart request.

A file already sent in this conversation (same bytes) is not sent again: the Space still has it, and the
FileData from the first upload is reused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence

import aiohttp

from ..config import BridgeConfig
from ..errors import ProtocolError, RouteMissing, UploadRejected, classify_status
from ..media import MediaFile, inspect_file
from ..messages import FileData, file_data

log = logging.getLogger(__name__)


async def inspect_all(paths: Sequence[str], config: BridgeConfig, *, new_turn: bool = True,
                      known: MutableMapping[tuple[str, int, int], MediaFile] | None = None) -> list[MediaFile]:
    """Check files before any byte leaves the machine. ``known`` remembers files already checked in this
    conversation (by path, size and mtime), so history files are not decoded and hashed again each turn."""
    if new_turn and len(paths) > config.limits.max_files:
        raise UploadRejected(f"{len(paths)} files is more than the {config.limits.max_files} a turn can carry.",
                             reason="too_many_files")
    known = {} if known is None else known

    async def one(path: str) -> MediaFile:
        try:
            st = os.stat(path)
            key = (path, st.st_size, st.st_mtime_ns)
        except OSError:
            key = (path, -1, -1)
        if key not in known:
            known[key] = await asyncio.to_thread(inspect_file, path, config.limits)
        return known[key]

    return list(await asyncio.gather(*(one(p) for p in paths)))


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


async def upload(session: aiohttp.ClientSession, routes: str, files: Sequence[MediaFile],
                 session_hash: str, headers: Mapping[str, str],
                 sent: MutableMapping[str, FileData]) -> dict[str, FileData]:
    """FileData for each file, keyed by local path; ``sent`` (sha256 -> FileData) is the conversation's memory
    of what the Space already holds, and gains the files uploaded now. ``routes``: the Space's URL and its
    ``api_prefix`` (``protocol.routes``)."""
    new: dict[str, MediaFile] = {}
    for media in files:
        if media.sha256 not in sent:
            new.setdefault(media.sha256, media)
    if new:
        batch = list(new.values())
        contents = await asyncio.gather(*(asyncio.to_thread(_read, m.path) for m in batch))
        form = aiohttp.FormData()
        for media, data in zip(batch, contents):
            form.add_field("files", data, filename=media.name, content_type=media.mime_type)
        url = f"{routes}/upload?upload_id={session_hash}"
        async with session.post(url, data=form, headers=dict(headers)) as resp:
            body = await resp.text()
            if resp.status == 404:
                raise RouteMissing(f"The Space's upload answered HTTP 404 at {resp.url.path}, though its /config "
                                    "answered: a protocol problem; the Space may have changed its interface.",
                                    status=404)
            if resp.status != 200:
                error = classify_status(resp.status, body, "The Space's upload")
                if isinstance(error, ProtocolError):
                    error = UploadRejected(f"The Space refused the upload: {error}", reason="refused")
                raise error
        try:
            server_paths = json.loads(body)
        except ValueError as exc:
            raise ProtocolError("The Space's upload answer is not JSON.") from exc
        if not isinstance(server_paths, list) or len(server_paths) != len(batch):
            raise ProtocolError(f"The Space's upload answered {str(server_paths)[:80]!r} for {len(batch)} file(s).")
        for media, server_path in zip(batch, server_paths):
            sent[media.sha256] = file_data(routes, str(server_path), media.name, media.size,
                                           media.mime_type)
        log.debug("uploaded %d file(s), %d bytes", len(batch), sum(m.size for m in batch))
    return {media.path: sent[media.sha256] for media in files}


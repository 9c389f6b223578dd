"""Count and size limits of an OpenAI request, checked before any work: on the raw body, then on the parsed request
before a single file is decoded.

Why a module of its own: the probe of issue 27 sent 16,000 tiny images in one request and the server spent 22 s
on the event loop (the attachments were matched with ``list.index``, and every file was decoded before the 8-file
and 32-file limits were looked at); a 60 MB ``data:`` URL was copied four times before its size was refused.
Every check here is one linear pass with no copy of the data:

- ``check_raw``: on the bytes as they arrived, before JSON decoding. A file part has the key ``"image_url"`` or
  ``"input_audio"`` (each spelled twice: the part's type and its key), so counting those strings bounds the number
  of files; a ``data:`` URL's length is measured from its prefix to the closing quote (base64 holds no quote).
  A request that escapes its keys (``"\\u0069mage_url"``) passes this cheap look; ``check_parsed`` catches it.
- ``check_parsed``: on the parsed request, before ``to_turn`` decodes anything: files per turn, files in the
  history, and each file's base64 length against the largest file the bridge would take.
"""

from __future__ import annotations

import re

from ..config import Limits
from .errors import bad_request
from .schema import AudioPart, ChatRequest, ImagePart

_DATA_URL_START = re.compile(rb'"data:([\w.+-]+/[\w.+-]+)?[^",]{0,200},')
PREFIX_ALLOWANCE = 256  # the ``data:image/png;base64,`` prefix and whitespace around a URL


def max_files(limits: Limits) -> int:
    """The most files one request may carry: the history's and the new turn's."""
    return limits.max_history_files + limits.max_files


def base64_limit(limit_bytes: int) -> int:
    """The longest base64 text of a file of at most ``limit_bytes`` (4 characters per 3 bytes, padding)."""
    return 4 * -(-limit_bytes // 3) + PREFIX_ALLOWANCE


def _too_large(param: str, what: str, length: int, limit_bytes: int) -> Exception:
    mb = 1024 * 1024
    return bad_request(f"{param}: the {what} is about {length * 3 / 4 / mb:.0f} MB, over the {limit_bytes / mb:.0f} MB "
                       "limit (refused before it was decoded).", param, "too_large")


def _limit_for(mime: str, limits: Limits) -> tuple[str, int]:
    if mime.lower().startswith("audio/"):
        return "audio", limits.max_audio_bytes
    return "image", limits.max_image_bytes


def check_raw(body: bytes | bytearray, limits: Limits) -> None:
    """Refuse a body that carries more files than any request may, or a ``data:`` URL longer than any file the
    bridge takes, before it is decoded as JSON (see the module's docstring)."""
    parts = (body.count(b'"image_url"') + body.count(b'"input_audio"')) // 2
    if parts > max_files(limits):
        raise bad_request(f"The request carries about {parts:,} files; at most {limits.max_files} a turn and "
                          f"{limits.max_history_files} in the earlier turns are taken.", "messages",
                          "too_many_files")
    for found in _DATA_URL_START.finditer(body):
        end = body.find(b'"', found.end())
        length = (len(body) if end < 0 else end) - (found.start() + 1)  # the URL, without its opening quote
        what, limit = _limit_for((found.group(1) or b"image/png").decode("latin-1"), limits)
        if length > base64_limit(limit):
            raise _too_large("messages", f"{what} in a data: URL", length, limit)


def check_parsed(req: ChatRequest, limits: Limits) -> None:
    """Files per turn, files in the history, and each file's size from its base64 length: all before any file is
    decoded. The last run of user messages is the new turn (as ``messages.to_turn`` reads it)."""
    counts: list[int] = []  # files per turn (a turn: user messages up to the next assistant message)
    open_turn = False
    for i, message in enumerate(req.messages):
        if message.role == "assistant":
            open_turn = False
            continue
        if message.role != "user":
            continue
        if not open_turn:  # a user message opens a turn whatever it carries (text alone too)
            counts.append(0)
            open_turn = True
        if message.content is None or isinstance(message.content, str):
            continue
        for j, part in enumerate(message.content):
            if isinstance(part, ImagePart):
                url = part.image_url.url
                what, limit = _limit_for(url[5:60].split(";", 1)[0] if url[:5].lower() == "data:" else "", limits)
                if len(url) > base64_limit(limit):
                    raise _too_large(f"messages[{i}].content[{j}].image_url.url", what, len(url), limit)
            elif isinstance(part, AudioPart):
                if len(part.input_audio.data) > base64_limit(limits.max_audio_bytes):
                    raise _too_large(f"messages[{i}].content[{j}].input_audio.data", "audio",
                                     len(part.input_audio.data), limits.max_audio_bytes)
            else:
                continue
            counts[-1] += 1
    if counts and counts[-1] > limits.max_files:
        raise bad_request(f"The last message carries {counts[-1]:,} files; a turn takes at most {limits.max_files}.",
                          "messages", "too_many_files")
    earlier = sum(counts[:-1])
    if earlier > limits.max_history_files:
        raise bad_request(f"The earlier messages carry {earlier:,} files; the limit is {limits.max_history_files}. "
                          "Start a new conversation.", "messages", "too_many_files")

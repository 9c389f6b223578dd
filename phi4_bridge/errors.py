"""Every error the bridge raises, in one file, so a caller can catch exactly what it can act on.

    Phi4Error                      anything the bridge raises on purpose
    ├── SpaceUnavailable           the Space cannot take calls: sleeping, paused, not found, unreachable
    │   └── StreamTimeout          it went silent past a timeout (connect, first event, between events)
    ├── QuotaExceeded              the caller's ZeroGPU quota is spent (``retry_after`` in seconds when known)
    ├── GpuBusy                    no GPU was free in time; a retry may work
    ├── AuthError                  the Hub or the Space refused the credentials
    │   └── TokenRejected          the Space refused the ZeroGPU token: fetch a new one and retry once
    │       └── TokenExpired       ... because it expired
    ├── InputRejected              the turn was refused before anything was sent (``reason`` says why)
    │   └── UploadRejected         ... because of a file, or the Space refused the upload
    ├── RemoteError                the Space raised an error of its own (``title`` and text as it sent them)
    │   └── WorkerError            the ZeroGPU worker failed on the GPU side
    └── ProtocolError              the Space answered something the protocol does not allow
        └── RouteMissing           a route answered 404 though ``/config`` answered: not a missing Space

Messages are written for a person: each says what happened and what to do. They never carry a token:
``redact`` scrubs anything that looks like one from text that came from the network.

``classify`` turns a status code and/or the Space's error text into one of these, by substring, the way
gradio's own code recognises ZeroGPU failures (the texts vary between Space versions).
"""

from __future__ import annotations

import html
import json
import re

_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def redact(text: str) -> str:
    """Remove anything token-shaped (JWTs, ``hf_`` tokens, bearer values) from text meant for people."""
    text = _JWT.sub("[token]", text)
    text = _HF_TOKEN.sub("[token]", text)
    return _BEARER.sub(r"\1[token]", text)


class Phi4Error(Exception):
    """Base of every error the bridge raises; ``str()`` is a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class SpaceUnavailable(Phi4Error):
    """``state`` is one of ``sleeping``, ``paused``, ``not_found``, ``private``, ``unreachable``, ``error``."""

    def __init__(self, message: str, state: str = "unreachable") -> None:
        super().__init__(message)
        self.state = state


class StreamTimeout(SpaceUnavailable):
    def __init__(self, message: str) -> None:
        super().__init__(message, state="timeout")


class QuotaExceeded(Phi4Error):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GpuBusy(Phi4Error):
    pass


class AuthError(Phi4Error):
    pass


class TokenRejected(AuthError):
    pass


class TokenExpired(TokenRejected):
    pass


class InputRejected(Phi4Error):
    """A turn that will not be sent: an empty or too long message or history, an unknown setting; or, from the
    app, a visitor who is busy or over their turn budget (``retry_after``: seconds until they may send again)."""

    def __init__(self, message: str, reason: str = "rejected", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class UploadRejected(InputRejected):
    pass


class RemoteError(Phi4Error):
    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.title = title


class WorkerError(RemoteError):
    pass


class ProtocolError(Phi4Error):
    pass


_RETRY_IN = re.compile(r"(?:retry|try again) in (\d+):(\d{2}):(\d{2})")
_LINK = re.compile(r"""<a\b[^>]*?href\s*=\s*["']([^"']*)["'][^>]*>(.*?)</a\s*>""", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def plain_text(text: str) -> str:
    """The Space's error text without HTML (ZeroGPU sends ``<a href=...>`` as is), a link's address kept as
    text after its words, entities decoded, spaces collapsed."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(1) else m.group(2), text)
    text = html.unescape(_TAG.sub("", text))
    return re.sub(r"\s+", " ", text).strip()


def _retry_after(text: str) -> float | None:
    match = _RETRY_IN.search(text)
    if not match:
        return None
    hours, minutes, seconds = (int(g) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def _wait_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 1:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"{int(seconds)} seconds"


def classify_error_text(text: str | None, title: str | None = None) -> Phi4Error:
    """Map the Space's own error text (``process_completed`` with ``success: false``, a ``/run/predict`` 500, an
    ``unexpected_error``) to an error type. The texts of every era of ZeroGPU's ``spaces`` package are known
    (the 2024, 2025 and later wordings); anything else is the Space's own message, quoted."""
    text, title = plain_text(text or ""), plain_text(title or "") or None
    low = " ".join(part for part in (title, text) if part).lower()
    detail = redact(text or title or "") or "no details were given"
    if "reached its gpu limit" in low:
        return GpuBusy(f"The Space has used up its own GPU allowance for now; try again later. ({detail})")
    if "quota" in low or "runs limit" in low:
        wait = _retry_after(low)
        hint = f" Try again in {_wait_words(wait)}" if wait else " Wait a while"
        signin = " or sign in with a Hugging Face token (HF_TOKEN) for a larger quota."
        return QuotaExceeded(f"Your ZeroGPU quota is used up.{hint}{signin} ({detail})", retry_after=wait)
    if "no gpu was available" in low or "gpu is busy" in low or "zerogpu queue timeout" in low:
        return GpuBusy(f"All of the Space's GPUs are busy right now; try again in a minute. ({detail})")
    if "token expired" in low or "expired zerogpu" in low or "expired token" in low:
        return TokenExpired(f"The ZeroGPU token expired. ({detail})")
    if "invalid zerogpu token" in low or "invalid token" in low:
        return TokenRejected(f"The Space refused the ZeroGPU token; check HF_TOKEN. ({detail})")
    if "worker error" in low or "gpu task aborted" in low:
        return WorkerError(f"The Space's GPU worker failed; try again. ({detail})", title=title)
    if "sleeping" in low or "paused" in low:
        return SpaceUnavailable(f"The Space is {'paused' if 'paused' in low else 'sleeping'}. ({detail})",
                                state="paused" if "paused" in low else "sleeping")
    if text and (not title or title.lower() == "error"):
        return RemoteError(f"The Space says: {detail}", title=title)
    return RemoteError(f"The Space reported an error: {detail}", title=title)


def space_error_json(body: str) -> tuple[str, str | None] | None:
    """``(error, title)`` from a gradio error answer (``{"error": ..., "title": ...}``), else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        title = data.get("title")
        return data["error"], title if isinstance(title, str) else None
    return None


def classify_status(status: int, body: str, what: str) -> Phi4Error:
    """Map an HTTP status (and the page text) from ``what`` (e.g. "the Space") to an error type."""
    low = body.lower()
    snippet = redact(body.strip()[:200])
    if status == 503 and "queue is full" in low:  # met at the queue's join: the Space is what is busy
        return GpuBusy("The Space is busy: its queue is full. Try again in a minute.")
    if status == 429:
        return classify_error_text(body) if "quota" in low else QuotaExceeded(
            f"{what} says too many requests (HTTP 429); wait a minute and try again.")
    # Sleeping, paused and not found are states of the Space itself, whichever of its routes met them first (an
    # upload, the queue, the Hub page): the sentence names the Space, as README's fault table promises.
    if status == 503 or "sleeping" in low or "paused" in low:
        if "paused" in low:
            return SpaceUnavailable("The Space is paused by its owner; it answers again only when they restart it.",
                                    state="paused")
        if "sleeping" in low:
            return SpaceUnavailable("The Space is sleeping. Open its page on huggingface.co to wake it, then retry "
                                    "in a minute or two.", state="sleeping")
        return SpaceUnavailable(f"{what} is unavailable (HTTP 503); it may be starting. Retry in a minute.",
                                state="error")
    if status == 404:
        return SpaceUnavailable("The Space was not found (HTTP 404): check the Space name and URL.",
                                state="not_found")
    if status in (401, 403):
        return AuthError(f"{what} refused access (HTTP {status}): the Space may be private, or the HF token "
                         "may be wrong.")
    if status == 413:
        return UploadRejected(f"{what} refused the file as too large (HTTP 413).", reason="too_large")
    own = space_error_json(body) if status >= 400 else None
    if own is not None:  # the Space's own gr.Error (a /run/predict step answers it with HTTP 500)
        return classify_error_text(*own)
    if status >= 500:
        return SpaceUnavailable(f"{what} failed (HTTP {status}): {snippet or 'no details'}", state="error")
    return ProtocolError(f"{what} answered HTTP {status} unexpectedly: {snippet or 'no details'}")


class RouteMissing(ProtocolError):
    """A route of the Space answered 404 after its ``/config`` answered: the bridge asked the wrong route (the
    job asks ``/config`` again: when that is gone too, the Space is, and ``SpaceUnavailable`` says so)."""

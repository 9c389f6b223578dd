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
``redact`` scrubs anything that looks like one from text that came from the network. An error met in an HTTP
answer carries that answer's ``status`` (None otherwise); ``SpaceUnavailable.state`` is an ``UnavailableState``.

``classify`` turns a status code and/or the Space's error text into one of these, by substring, the way
gradio's own code recognises ZeroGPU failures (the texts vary between Space versions).
"""

from __future__ import annotations

import html
import json
import re
from enum import StrEnum

_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def redact(text: str) -> str:
    """Remove anything token-shaped (JWTs, ``hf_`` tokens, bearer values) from text meant for people."""
    text = _JWT.sub("[token]", text)
    text = _HF_TOKEN.sub("[token]", text)
    return _BEARER.sub(r"\1[token]", text)


class Phi4Error(Exception):
    """Base of every error the bridge raises; ``str()`` is a message a person can act on. ``said``: the Space's own
    words (plain text, no token) when the error came from them; ``status``: the HTTP status of the answer that
    said so (the Space's, or the Hub's), None when no HTTP answer did."""

    said: str | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


class UnavailableState(StrEnum):
    """Why the Space cannot take calls (``SpaceUnavailable.state``). A ``str``: messages, logs and JSON (the
    OpenAI API's ``code``, ``space_sleeping``) read the value as before."""

    SLEEPING = "sleeping"
    PAUSED = "paused"
    BUILDING = "building"  # the Hub says it builds or starts
    NOT_FOUND = "not_found"
    PRIVATE = "private"  # the Hub shows it to no token of ours
    TOKEN_REFUSED = "token_refused"  # the Hub refused the HF token
    UNREACHABLE = "unreachable"  # no answer at all (the network, the URL)
    ERROR = "error"  # the Space (or the Hub) reports an error of its own
    TIMEOUT = "timeout"  # ``StreamTimeout``
    DROPPED = "dropped"  # the connection broke mid-answer
    GPU_DURATION = "gpu_duration"  # the Space asks ZeroGPU for a longer task than allowed
    NONE_RUNNING = "none_running"  # ``--space auto`` found no Space that runs and drives


class SpaceUnavailable(Phi4Error):
    """``state``: why (``UnavailableState``)."""

    def __init__(self, message: str, state: UnavailableState = UnavailableState.UNREACHABLE, *,
                 status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.state = state


class StreamTimeout(SpaceUnavailable):
    def __init__(self, message: str) -> None:
        super().__init__(message, state=UnavailableState.TIMEOUT)


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


def exit_code(error: Phi4Error) -> int:
    """docs/cli.md's exit codes for a failure: 2 bad input, 3 the Space unavailable (or unable to serve at all),
    4 quota or busy GPUs, 1 anything else."""
    if isinstance(error, InputRejected):
        return 2
    if isinstance(error, SpaceUnavailable):
        return 3
    if isinstance(error, QuotaExceeded | GpuBusy):
        return 4
    return 1


_RETRY_IN = re.compile(r"(?:retry|try again) in (?:(\d+) days?, )?(\d+):(\d{2}):(\d{2})")
_LINK = re.compile(r"""<a\b[^>]*?href\s*=\s*["']([^"']*)["'][^>]*>(.*?)</a\s*>""", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_URL = re.compile(r"https?://[^\s()<>\"']+[^\s()<>\"'.,;:]")
PRO_URL = "https://huggingface.co/subscribe/pro"  # said when a signed-in caller's Space gave no address
CREDITS_URL = "https://huggingface.co/settings/billing"


def plain_text(text: str) -> str:
    """The Space's error text without HTML (ZeroGPU sends ``<a href=...>`` as is), a link's address kept as
    text after its words, entities decoded, spaces collapsed."""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(1) else m.group(2), text)
    text = html.unescape(_TAG.sub("", text))
    return re.sub(r"\s+", " ", text).strip()


def _retry_after(text: str) -> float | None:
    """The wait ZeroGPU names (``str(timedelta)``: "0:09:48", "1 day, 0:00:00"), in seconds."""
    match = _RETRY_IN.search(text)
    if not match:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def _wait_words(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 90:
        hours = round(minutes / 60)
        return f"about {hours} hours"
    if minutes >= 1:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"{int(seconds)} seconds"


# Who the Space took the caller for, by its own words (spaces' _toast_action and quota texts, every era): the
# action differs (an anonymous caller signs in; a signed-in one waits or upgrades; a PRO one waits or buys credits).
_PRO_WORDS = ("pro gpu quota", "pro zerogpu quota", "add credits")
_FREE_WORDS = ("free gpu quota", "free zerogpu quota", "subscribe to pro", "subscribe to hugging face pro",
               "user is runnning out", "user is running out")
_ANON_WORDS = ("create a free account", "sign-up on hugging face", "signup for free", "unlogged user",
               "authenticate with a hugging face token", "huggingface.co/join")


def _who(low: str) -> str | None:
    """``anonymous``, ``free``, ``pro`` or None (the Space's words do not say)."""
    if any(w in low for w in _ANON_WORDS):
        return "anonymous"
    if any(w in low for w in _PRO_WORDS):
        return "pro"
    if any(w in low for w in _FREE_WORDS):
        return "free"
    return None


def _link(text: str) -> str | None:
    """The first address in the Space's (plain) text: where its own action is."""
    match = _URL.search(text)
    return match.group(0) if match else None


def _quota(low: str, text: str, detail: str) -> QuotaExceeded:
    """A spent quota or runs limit: wait (as long as the Space says), and sign in, upgrade or buy credits,
    whichever fits who the Space says the caller is."""
    wait = _retry_after(low)
    who, link = _who(low), _link(text)
    if "runs limit" in low:
        head, when = "Your ZeroGPU runs limit is reached.", "Wait a while"
    else:
        kind = {"free": "free ", "pro": "PRO "}.get(who or "", "")
        head = f"Your {kind}ZeroGPU quota is used up."
        when = f"Try again in {_wait_words(wait)}" if wait else ("Wait a while" if who in (None, "anonymous")
                                                                 else "Wait until it refills")
    if who == "free":
        action = f", or upgrade to Hugging Face PRO for a larger quota ({link or PRO_URL})."
    elif who == "pro":
        action = f", or add credits to keep going ({link or CREDITS_URL})."
    else:  # anonymous, or words that do not say: signing in is what helps most
        action = " or sign in with a Hugging Face token (HF_TOKEN) for a larger quota."
    return QuotaExceeded(f"{head} {when}{action} ({detail})", retry_after=wait)


def _busy(low: str, text: str, detail: str) -> GpuBusy:
    """No GPU came free in time: the Space is busy, whatever the title says; who the caller is only changes
    what gets a better place in ZeroGPU's queue."""
    who, link = _who(low), _link(text)
    extra = ""
    if who == "anonymous":
        extra = " Signing in with a Hugging Face token (HF_TOKEN) gives a higher place in ZeroGPU's queue."
    elif who == "free":
        extra = f" A Hugging Face PRO account gets the highest place in ZeroGPU's queue ({link or PRO_URL})."
    return GpuBusy(f"All of the Space's GPUs are busy right now; try again in a minute.{extra} ({detail})")


def _duration(low: str, text: str, detail: str) -> SpaceUnavailable:
    """The Space asks for a longer GPU task than ZeroGPU allows: its own setting, the same on every try."""
    asked = re.search(r"duration \((\d+)s\)", low)
    pro = _link(text) if "pro" in low else None
    upgrade = f" A Hugging Face PRO account allows longer GPU tasks ({pro})." if pro else ""
    return SpaceUnavailable(
        f"The Space asks ZeroGPU for a longer GPU task ({asked.group(1) + 's' if asked else 'its duration'}) than "
        f"the maximum allowed; retrying cannot help: it is the Space's own setting, which its owner must lower."
        f"{upgrade} ({detail})", state=UnavailableState.GPU_DURATION)


def classify_error_text(text: str | None, title: str | None = None) -> Phi4Error:
    """Map the Space's own error text (``process_completed`` with ``success: false``, a ``/run/predict`` 500, an
    ``unexpected_error``) to an error type and a sentence that says what to do. The texts of every era of
    ZeroGPU's ``spaces`` package are known (tests/data/zerogpu_messages.json): the text decides, the title only
    when the text says nothing known (a queue timeout titled "ZeroGPU quota exceeded" is a busy Space); anything
    else is the Space's own message, quoted."""
    text, title = plain_text(text or ""), plain_text(title or "") or None
    detail = redact(text or title or "") or "no details were given"
    error = _classified(text, title, detail)
    error.said = redact(": ".join(part for part in (title, text) if part)) or None
    return error


def _classified(text: str, title: str | None, detail: str) -> Phi4Error:
    low, title_low = text.lower(), (title or "").lower()
    if "requested gpu duration" in low or "illegal duration" in title_low:
        return _duration(low, text, detail)
    if "reached its gpu limit" in low:
        return GpuBusy("The Space has used up its own GPU allowance for now (calls that carry no ZeroGPU token "
                       f"share it); try again later. ({detail})")
    if "no gpu was available" in low or "no gpu is currently available" in low or "gpu is busy" in low:
        return _busy(low, text, detail)
    if "credits allocated to running tasks" in low:
        return QuotaExceeded("Too many of your ZeroGPU tasks are running at once; wait for them to finish, then "
                             f"try again. ({detail})")
    if "quota" in low or "runs limit" in low:
        return _quota(low, text, detail)
    # Only a ZeroGPU token: a Space's own "Token expired" or "Invalid token" (its login, its API key, a tokenizer)
    # is its own error, not a reason to fetch a new ZeroGPU token, retry the step and blame HF_TOKEN.
    if "zerogpu token expired" in low or "expired zerogpu" in low:
        return TokenExpired("The ZeroGPU token expired. Try again in a minute (a fresh token is "
                            "fetched for each try); if it keeps happening, check that this computer's clock is "
                            f"right and that HF_TOKEN is valid. ({detail})")
    if "invalid zerogpu token" in low:
        return TokenRejected(f"The Space refused the ZeroGPU token; check HF_TOKEN. ({detail})")
    if "gpu task aborted" in low:
        return WorkerError("The Space's GPU task was aborted before it finished; try again, with a shorter "
                           f"message or fewer files if it happens again. ({detail})", title=title)
    if "worker error" in low or "worker error" in title_low:
        return WorkerError(f"The Space's GPU worker failed; try again. ({detail})", title=title)
    if "internal gradio error" in low or "internal infra error" in low:
        return RemoteError(f"The Space's ZeroGPU failed inside; try again in a minute, and tell the Space's owner "
                           f"if it keeps happening. ({detail})", title=title)
    if "sleeping" in low or "paused" in low:
        return SpaceUnavailable(f"The Space is {'paused' if 'paused' in low else 'sleeping'}. ({detail})",
                                state=UnavailableState.PAUSED if "paused" in low else UnavailableState.SLEEPING)
    if "queue timeout" in title_low:
        return _busy(low, text, detail)
    if "quota" in title_low:
        return _quota(low, text, detail)
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
    """Map an HTTP status (and the page text) from ``what`` (e.g. "the Space") to an error type, which carries
    that ``status``."""
    error = _by_status(status, body, what)
    error.status = status
    return error


def _by_status(status: int, body: str, what: str) -> Phi4Error:
    low = body.lower()
    snippet = redact(body.strip()[:200])
    if status == 503 and "queue is full" in low:  # met at the queue's join: the Space is what is busy
        return GpuBusy("The Space is busy: its queue is full. Try again in a minute.")
    if status == 429:
        return classify_error_text(body) if "quota" in low else QuotaExceeded(
            f"{what} says too many requests (HTTP 429); wait a minute and try again.")
    # Sleeping, paused and not found are states of the Space itself, whichever of its routes met them first (an
    # upload, the queue, the Hub page): the sentence names the Space, as docs/failures.md's table promises.
    if status == 503 or "sleeping" in low or "paused" in low:
        if "paused" in low:
            return SpaceUnavailable("The Space is paused by its owner; it answers again only when they restart it.",
                                    state=UnavailableState.PAUSED)
        if "sleeping" in low:
            return SpaceUnavailable("The Space is sleeping. Open its page on huggingface.co to wake it, then retry "
                                    "in a minute or two.", state=UnavailableState.SLEEPING)
        return SpaceUnavailable(f"{what} is unavailable (HTTP 503); it may be starting. Retry in a minute.",
                                state=UnavailableState.ERROR)
    if status == 404:
        return SpaceUnavailable("The Space was not found (HTTP 404): check the Space name and URL.",
                                state=UnavailableState.NOT_FOUND)
    if status in (401, 403):
        return AuthError(f"{what} refused access (HTTP {status}): the Space may be private, or the HF token "
                         "may be wrong.")
    if status == 413:
        return UploadRejected(f"{what} refused the file as too large (HTTP 413).", reason="too_large")
    own = space_error_json(body) if status >= 400 else None
    if own is not None:  # the Space's own gr.Error (a /run/predict step answers it with HTTP 500)
        return classify_error_text(*own)
    if status >= 500:
        return SpaceUnavailable(f"{what} failed (HTTP {status}): {snippet or 'no details'}",
                                state=UnavailableState.ERROR)
    return ProtocolError(f"{what} answered HTTP {status} unexpectedly: {snippet or 'no details'}")


class RouteMissing(ProtocolError):
    """A route of the Space answered 404 after its ``/config`` answered: the bridge asked the wrong route (the
    job asks ``/config`` again: when that is gone too, the Space is, and ``SpaceUnavailable`` says so)."""

"""ZeroGPU play for the stand-in: tokens (JWTs), per-user GPU quota, faults and counters.

Why: the bridge must cope with what a ZeroGPU Space does to its callers (a token per caller, a GPU-seconds
quota that runs out, busy GPUs, worker failures, sleeping or missing Spaces, broken streams), so the stand-in
acts those out on demand, deterministically.

Tokens are HS256 JWTs signed with a per-process random secret (stdlib ``hmac``). Payload: ``sub`` (user id),
``kind`` ("anonymous" or "user"), ``iat``, ``exp`` (iat + token TTL), ``uuid`` (anonymous session id).

Callers: the ``x-zerogpu-token`` header (else ``x-ip-token``); missing or the literal ``[object Object]`` is
an anonymous caller. Anonymous quota is per client address (as ZeroGPU's is per IP); signed-in quota is per
``sub``. Quota refills fully ``quota_window`` seconds after its first use (or on ``/standin/reset``).

Warning: when a call leaves less than two calls' worth of quota, the bot step sends ``gr.Warning`` text
"ZeroGPU quota running low: {N}s left" (a ``log`` event with level "warning", as ZeroGPU's own warnings).

Errors, as ``gr.Error(message, title=title)``; they arrive in ``process_completed`` as
``{"success": false, "output": {"error": message, "title": title}}``:

============== ========================== ====================================================================
cause          title                      message
============== ========================== ====================================================================
bad signature  ZeroGPU token error        Invalid ZeroGPU token
expired        ZeroGPU token error        ZeroGPU token expired. Reload the page to get a new one.
quota (anon)   ZeroGPU quota exceeded     You have exceeded your GPU quota (1s requested vs. 0s left).
                                          Create a free account to get more usage quota.
quota (user)   ZeroGPU quota exceeded     You have exceeded your free ZeroGPU quota (1s requested vs. 0s
                                          left). Try again in 0:09:48. Subscribe to Hugging Face PRO to get 40
                                          min of ZeroGPU quota a day - https://huggingface.co/subscribe/pro?from=ZeroGPU
no_gpu         ZeroGPU queue timeout      No GPU was available after 60s
worker_error   ZeroGPU worker error       ZeroGPU worker error
says           (as given)                 (as given): any title and text, HTML included, e.g. each of
                                          tests/data/zerogpu_messages.json (``POST /standin/fault`` with
                                          ``{"fault": "says", "title": ..., "text": ...}``)
============== ========================== ====================================================================

The quota wordings are the real ones of two eras of the ``spaces`` package: an anonymous caller gets 0.30's
(gradio < 4.39, no link), a signed-in one 0.51's for API callers (the action and its address in the text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

FAULTS = (
    "quota",
    "no_gpu",
    "worker_error",
    "sleeping",
    "not_found",
    "token_expired",
    "slow_start",
    "drop_stream",
    "bad_event",
    "bad_bytes",
    "says",
)
CALL_FAULTS = frozenset({"quota", "no_gpu", "worker_error", "token_expired", "slow_start", "says"})
SPACE_FAULTS = frozenset({"sleeping", "not_found"})
STREAM_FAULTS = frozenset({"drop_stream", "bad_event", "bad_bytes"})

TITLE_TOKEN = "ZeroGPU token error"
TITLE_QUOTA = "ZeroGPU quota exceeded"
TITLE_NO_GPU = "ZeroGPU queue timeout"
TITLE_WORKER = "ZeroGPU worker error"
MSG_INVALID_TOKEN = "Invalid ZeroGPU token"
MSG_EXPIRED_TOKEN = "ZeroGPU token expired. Reload the page to get a new one."
MSG_NO_GPU = "No GPU was available after 60s"
MSG_WORKER = "ZeroGPU worker error"
MISSING_TOKEN = "[object Object]"
PRO_URL = "https://huggingface.co/subscribe/pro?from=ZeroGPU"


class ZeroGPUError(Exception):
    """A ZeroGPU refusal; the server turns it into ``gr.Error(message, title=title)``."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Issues and checks HS256 JWTs with a secret that lives only as long as this process."""

    def __init__(self, ttl: float = 600.0, secret: bytes | None = None) -> None:
        self.ttl = ttl
        self._secret = secret or os.urandom(32)

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest())

    def issue(self, kind: str, sub: str, ttl: float | None = None, **extra: Any) -> tuple[str, int]:
        """A signed token and its ``exp`` (unix seconds)."""
        now = int(time.time())
        exp = now + int(self.ttl if ttl is None else ttl)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = {"sub": sub, "kind": kind, "iat": now, "exp": exp, **extra}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}", exp

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; ZeroGPUError when it is malformed, forged or expired."""
        try:
            header, payload, signature = token.split(".")
            good = hmac.compare_digest(self._sign(f"{header}.{payload}"), signature)
            claims = json.loads(_unb64(payload)) if good else None
        except (ValueError, json.JSONDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise ZeroGPUError(TITLE_TOKEN, MSG_INVALID_TOKEN)
        if float(claims.get("exp", 0)) <= time.time():
            raise ZeroGPUError(TITLE_TOKEN, MSG_EXPIRED_TOKEN)
        return claims


def user_from_hf_token(hf_token: str) -> str:
    """A stable fake user name for a Hub access token (never the token itself)."""
    return "user-" + hashlib.sha256(hf_token.encode()).hexdigest()[:10]


@dataclass
class Stats:
    """Counters served at ``GET /standin/stats``."""

    token_page_fetches: int = 0
    jwt_fetches: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    calls: int = 0
    cancelled: int = 0
    active: int = 0
    errors: int = 0
    space_authorization: int = 0  # Space-route requests that carried an Authorization header (never its value)
    tokens: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("tokens")
        data["tokens_seen"] = len(self.tokens)
        return data


@dataclass
class Caller:
    """Who is calling: the quota bucket key and whether they are signed in."""

    key: str
    kind: str
    token: str | None


class ZeroGPU:
    """Process-wide ZeroGPU state: issuer, quota book, fault switch, counters, per-session chunk stamps."""

    def __init__(
        self,
        *,
        token_ttl: float = 600.0,
        quota_seconds: float = 300.0,
        anon_quota_seconds: float = 60.0,
        gpu_seconds_per_call: float = 1.0,
        quota_window: float = 600.0,
        fault: str | None = None,
    ) -> None:
        self.issuer = TokenIssuer(token_ttl)
        self.quota_seconds = quota_seconds
        self.anon_quota_seconds = anon_quota_seconds
        self.gpu_seconds_per_call = gpu_seconds_per_call
        self.quota_window = quota_window
        self._lock = threading.Lock()
        self._used: dict[str, tuple[float, float]] = {}  # key -> (window start, seconds used)
        self.stats = Stats()
        self.stamps: dict[str, list[list[float]]] = {}
        self.seen: dict[str, dict[str, Any]] = {}  # session hash -> what its last bot step received
        self.fault: str | None = None
        self.fault_times: int | None = None
        self.said: tuple[str, str] = ("Error", "")  # the ``says`` fault's title and text
        self.set_fault(fault)

    # ---- faults -------------------------------------------------------------------------------------------
    def set_fault(self, name: str | None, times: int | None = None, title: str | None = None,
                  text: str | None = None) -> None:
        """Switch a fault on (for every use, or only the next ``times`` uses) or off (None); ``says`` raises
        ``text`` under ``title`` (gradio's own "Error" when none), as a ZeroGPU Space of some version words it."""
        if name is not None and name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        if name == "says" and not text:
            raise ValueError("the fault 'says' needs a text (and may have a title)")
        with self._lock:
            self.fault = name
            self.fault_times = times if name is not None else None
            self.said = (title or "Error", text or "")

    def fault_state(self) -> dict[str, Any]:
        return {"fault": self.fault, "times": self.fault_times, "known": list(FAULTS)}

    def take_fault(self, group: frozenset[str]) -> str | None:
        """The active fault if it is one of ``group``, counting one use of it."""
        with self._lock:
            name = self.fault
            if name is None or name not in group:
                return None
            if self.fault_times is not None:
                self.fault_times -= 1
                if self.fault_times <= 0:
                    self.fault, self.fault_times = None, None
            return name

    def peek_fault(self) -> str | None:
        return self.fault

    # ---- callers and quota -----------------------------------------------------------------------------------
    def identify(self, token: str | None, client_host: str, *, force_expired: bool = False) -> Caller:
        """The caller behind a ``x-zerogpu-token`` value; ZeroGPUError for a bad or expired token."""
        if force_expired:
            raise ZeroGPUError(TITLE_TOKEN, MSG_EXPIRED_TOKEN)
        if not token or token == MISSING_TOKEN:
            return Caller(key=f"anonymous@{client_host}", kind="anonymous", token=None)
        with self._lock:
            self.stats.tokens.add(token)
        claims = self.issuer.verify(token)
        if claims.get("kind") == "user":
            return Caller(key=str(claims.get("sub")), kind="user", token=token)
        return Caller(key=f"anonymous@{client_host}", kind="anonymous", token=token)

    def charge(self, caller: Caller) -> float:
        """Take one call's GPU seconds from the caller's quota (returning what is left), or raise the quota error."""
        cost = self.gpu_seconds_per_call
        limit = self.quota_seconds if caller.kind == "user" else self.anon_quota_seconds
        now = time.time()
        with self._lock:
            start, used = self._used.get(caller.key, (now, 0.0))
            if now - start >= self.quota_window:
                start, used = now, 0.0
            left = max(limit - used, 0.0)
            if left < cost:
                raise ZeroGPUError(
                    TITLE_QUOTA, self.quota_message(caller.kind, cost, left, start + self.quota_window - now)
                )
            self._used[caller.key] = (start, used + cost)
            return left - cost

    @staticmethod
    def quota_message(kind: str, requested: float, left: float, retry_in: float) -> str:
        """The real ZeroGPU quota wording (anonymous: create an account; signed in: try again in H:MM:SS, or PRO)."""
        head = f"You have exceeded your GPU quota ({requested:g}s requested vs. {int(left)}s left)."
        if kind == "anonymous":
            return f"{head} Create a free account to get more usage quota."
        wait = str(timedelta(seconds=max(int(retry_in), 0)))
        return (f"You have exceeded your free ZeroGPU quota ({requested:g}s requested vs. {int(left)}s left). Try "
                f"again in {wait}. Subscribe to Hugging Face PRO to get 40 min of ZeroGPU quota a day - {PRO_URL}")

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    def new_session_uuid(self) -> str:
        return str(uuid.uuid4())

    def stamp(self, session_hash: str, chars: int) -> None:
        with self._lock:
            self.stamps.setdefault(session_hash, []).append([time.time(), chars])

    def record_seen(self, session_hash: str, summary: dict[str, Any]) -> None:
        """Keep what a session's last bot step received (``GET /standin/seen``)."""
        with self._lock:
            self.seen[session_hash] = summary

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + by)

    def reset(self) -> None:
        """Forget quotas, counters, stamps, seen records and the fault (for ``POST /standin/reset``)."""
        with self._lock:
            self._used.clear()
            active = self.stats.active
            self.stats = Stats(active=active)
            self.stamps.clear()
            self.seen.clear()
            self.fault, self.fault_times = None, None

"""Errors in OpenAI's shape, with the HTTP status the openai SDK maps to its exception classes.

Why a table and not ad-hoc answers: every client of this API (the SDK, LiteLLM, Open WebUI) decides what to do
from the status alone (retry, ask for a key, show the message), so each bridge error has exactly one status:

    400 BadRequestError        the input: a file, a message, a setting the Space cannot honour
    401 AuthenticationError    a missing or wrong API key
    404 NotFoundError          an unknown model
    413                        a request body larger than this server reads
    429 RateLimitError         the ZeroGPU quota or the app's turns per visitor (``Retry-After``; ``x-should-retry:
                               false`` past two minutes or when no wait is known), or this key's turns are all in use
    502 InternalServerError    the Space answered something the protocol does not allow
    503 InternalServerError    the Space is asleep, paused, unreachable, busy, or its GPU worker failed
    504 InternalServerError    the Space went silent past a timeout

The message is the bridge's own sentence (already free of tokens: ``errors.redact``).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import (
    AuthError,
    GpuBusy,
    InputRejected,
    Phi4Error,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    SpaceUnavailable,
    StreamTimeout,
    UnavailableState,
    WorkerError,
)

NO_RETRY_PAST_S = 120.0  # the openai SDK waits out a Retry-After of at most two minutes


class ApiError(Exception):
    """An answer in OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def from_bridge(exc: Phi4Error, param: str | None = None) -> ApiError:
    """The API answer for a bridge error; ``param`` names the request field the error is about, when known."""
    message = str(exc)
    if isinstance(exc, QuotaExceeded):
        return quota(message, exc.retry_after)
    if isinstance(exc, InputRejected):
        if exc.reason == "busy":
            return ApiError(429, message, type="rate_limit_error", code="too_many_turns",
                            headers={"x-should-retry": "false"})
        if exc.reason == "budget":  # the app's turns per visitor (a key is a visitor)
            return rate_limited(message, exc.retry_after, code="visitor_budget_exceeded")
        return bad_request(message, param, code=exc.reason)
    if isinstance(exc, StreamTimeout):
        return ApiError(504, message, type="timeout_error", code="space_timeout")
    if isinstance(exc, SpaceUnavailable):
        # A Space whose own ZeroGPU duration is refused fails the same way every time: not worth the SDK's retries.
        never = {"x-should-retry": "false"} if exc.state is UnavailableState.GPU_DURATION else None
        return ApiError(503, message, type="service_unavailable_error", code=f"space_{exc.state}", headers=never)
    if isinstance(exc, GpuBusy):
        return ApiError(503, message, type="service_unavailable_error", code="gpu_busy")
    if isinstance(exc, WorkerError):
        return ApiError(503, message, type="service_unavailable_error", code="gpu_worker_error")
    if isinstance(exc, RemoteError):
        # The Space's own refusal of the turn (its user step's gr.Error: "Please upload only one image file.").
        return bad_request(message, param, code="space_refused")
    if isinstance(exc, AuthError):  # the host's HF or ZeroGPU token: not the caller's key, so not a 401
        return ApiError(503, message, type="service_unavailable_error", code="space_auth")
    if isinstance(exc, ProtocolError):
        return ApiError(502, message, type="api_error", code="space_protocol")
    return ApiError(500, message, type="api_error")


def quota(message: str, retry_after: float | None) -> ApiError:
    """429 for a spent ZeroGPU quota."""
    return rate_limited(message, retry_after, code="zerogpu_quota_exceeded")


def rate_limited(message: str, retry_after: float | None, code: str) -> ApiError:
    """429 with the wait. The SDK retries a 429 by itself: when the wait is at most two minutes it waits that out;
    a longer or unknown wait is not worth retrying, so ``x-should-retry: false``."""
    headers: dict[str, str] = {}
    if retry_after is not None and math.isfinite(retry_after):
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
    if retry_after is None or retry_after > NO_RETRY_PAST_S:
        headers["x-should-retry"] = "false"
    return ApiError(429, message, type="rate_limit_error", code=code, headers=headers)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", headers={"www-authenticate": 'Bearer realm="phi4-mirror"'})


def unknown_model(model: str, known: str) -> ApiError:
    return ApiError(404, f"The model {model!r} does not exist here; this server has {known!r}.", param="model",
                    code="model_not_found")

"""phi4_bridge: an async client for the Phi-4-multimodal ZeroGPU Space, and a stand-in Space to test it.

Read top down: ``bridge`` (a turn as a Job) -> ``token`` (ZeroGPU tokens), ``upload`` + ``media`` (files),
``protocol`` (requests), ``stream`` + ``sse`` (events) -> the Space. ``errors`` holds every error type.
"""

from .bridge import Conversation, Job, Phi4Bridge
from .config import BridgeConfig, Limits, Timeouts
from .errors import (
    AuthError,
    GpuBusy,
    Phi4Error,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    SpaceUnavailable,
    StreamTimeout,
    TokenExpired,
    TokenRejected,
    UploadRejected,
    WorkerError,
)
from .events import Done, Event, Log, Queued, Started, TextDelta

__all__ = [
    "AuthError", "BridgeConfig", "Conversation", "Done", "Event", "GpuBusy", "Job", "Limits", "Log",
    "Phi4Bridge", "Phi4Error", "ProtocolError", "QuotaExceeded", "Queued", "RemoteError", "SpaceUnavailable",
    "Started", "StreamTimeout", "TextDelta", "Timeouts", "TokenExpired", "TokenRejected", "UploadRejected",
    "WorkerError",
]

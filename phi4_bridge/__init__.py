"""phi4_bridge: an async client for the Phi-4-multimodal ZeroGPU Space (and any gradio chat Space).

Read top down: ``bridge`` (what turns share) -> ``job`` (a turn) -> ``chain`` (the Space's steps, from ``/config``)
-> the private wire modules in ``_wire`` (``token``: ZeroGPU tokens, ``upload``: files, ``protocol``: requests,
``stream`` + ``sse``: events) -> the Space. ``errors`` holds every error type. The stand-in Space the tests talk to
is a package of its own, ``phi4_standin``, which shares no code with this one. ``space_config`` fetches a
Space's ``/config``; ``hub`` asks the Hub about a Space, ``spaces`` chooses which one answers.
"""

from .bridge import Conversation, Phi4Bridge
from .chain import Option
from .config import BridgeConfig, Limits, Timeouts
from .errors import (
    AuthError,
    GpuBusy,
    InputRejected,
    Phi4Error,
    ProtocolError,
    QuotaExceeded,
    RemoteError,
    SpaceUnavailable,
    StreamTimeout,
    TokenExpired,
    TokenRejected,
    UnavailableState,
    UploadRejected,
    WorkerError,
)
from .events import Done, Event, JobStatus, Log, Queued, Started, TextDelta
from .job import Job

__all__ = [
    "AuthError", "BridgeConfig", "Conversation", "Done", "Event", "GpuBusy", "InputRejected", "Job", "JobStatus",
    "Limits", "Log",
    "Option", "Phi4Bridge", "Phi4Error", "ProtocolError", "QuotaExceeded", "Queued", "RemoteError", "SpaceUnavailable",
    "Started", "StreamTimeout", "TextDelta", "Timeouts", "TokenExpired", "TokenRejected", "UnavailableState",
    "UploadRejected",
    "WorkerError",
]

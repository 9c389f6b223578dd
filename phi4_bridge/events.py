"""What a turn yields, in the order a person sees it happen: queued, started, text as it streams, done.

Consumers match on the type. ``TextDelta.text`` is only the new text, never the reply again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class JobStatus(StrEnum):
    """Where a ``Job`` is: each event above moves it on; it ends done, failed or cancelled."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Queued:
    rank: int | None
    queue_size: int | None
    eta: float | None


@dataclass(frozen=True)
class Started:
    eta: float | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Log:
    level: str
    message: str


@dataclass(frozen=True)
class Done:
    text: str
    timings: dict[str, float] = field(default_factory=dict)


Event = Queued | Started | TextDelta | Log | Done

"""Pure figures: percentiles, per-chunk latency against the Space's stamps, and /proc readings of a process.

Why pure and tiny: every path's turn becomes one ``TurnResult`` (receipt times and cumulative reply lengths), so
all paths are summarised by the same code and can be compared side by side without path-specific maths.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class TurnResult:
    """One turn as a client saw it. Times are ``time.time()`` (the Space stamps with the same clock)."""

    path: str
    prompt: str
    sent_at: float
    receipts: list[tuple[float, int]] = field(default_factory=list)  # (unix time, cumulative reply chars)
    done_at: float | None = None
    error: str | None = None
    remote_session: str | None = None  # session hash the Space saw, when the client knows it
    stamps: list[list[float]] = field(default_factory=list)  # the Space's [unix time, cumulative chars]
    text: str = ""  # the final reply (checked for the image description in the upload figure)

    @property
    def ok(self) -> bool:
        return self.error is None and self.done_at is not None and bool(self.receipts)

    @property
    def first_text_s(self) -> float | None:
        return self.receipts[0][0] - self.sent_at if self.receipts else None

    @property
    def total_s(self) -> float | None:
        return self.done_at - self.sent_at if self.done_at is not None else None

    @property
    def chars(self) -> int:
        return self.receipts[-1][1] if self.receipts else 0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Iterable[float | None], scale: float = 1000.0) -> dict[str, Any]:
    """n, p50, p99, mean and max, multiplied by ``scale`` (seconds -> ms by default), rounded to 0.01."""
    data = [v for v in values if v is not None]

    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, 2)

    return {"n": len(data), "p50": r(percentile(data, 50)), "p99": r(percentile(data, 99)),
            "mean": r(sum(data) / len(data)) if data else None, "max": r(max(data)) if data else None}


def chunk_latencies(receipts: Sequence[tuple[float, int]], stamps: Sequence[Sequence[float]]) -> list[float]:
    """For each chunk the Space stamped (sent at ``t`` with cumulative length ``n``): the time the client first
    held at least ``n`` characters, minus ``t``. A client that sees text only at the end (the known client)
    thus gets each chunk's real delay until it became visible; a relay that merges chunks is charged for it."""
    out: list[float] = []
    i = 0
    for sent, chars in sorted((float(s[0]), int(s[1])) for s in stamps):
        while i < len(receipts) and receipts[i][1] < chars:
            i += 1
        if i == len(receipts):
            break
        out.append(receipts[i][0] - sent)
    return out


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 3)


# ---- /proc readings (Linux): no psutil needed ------------------------------------------------------------------
def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None if it is gone or /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def rss_bytes(pid: int) -> int | None:
    """Resident memory (VmRSS) of a process in bytes."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class RssPeak:
    """Samples a process's RSS every ``every`` seconds in a daemon thread; ``peak`` is the highest seen.
    Why a sampler: memory per conversation is what the app holds while the conversations run, not after."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid, self.every = pid, every
        self.peak = rss_bytes(pid) or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-peak", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss_bytes(self.pid) or 0)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def now() -> float:
    return time.time()

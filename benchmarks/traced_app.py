"""``python benchmarks/traced_app.py APP_PY [app flags]``: run an app.py with tracemalloc on, and two signals that
say where its memory is (for ``benchmarks.refusals``; any checkout's app.py, so an old one can be measured too).

- ``SIGUSR1``: print one ``TRACE`` line to stderr: the process's RSS, the bytes Python objects hold now
  (``tracemalloc``), and the number of objects the garbage collector tracks;
- ``SIGUSR2``: ``gc.collect()``, the same line (``collected``: objects that only reference cycles kept are gone),
  then glibc's ``malloc_trim(0)`` (hand freed heap pages back to the kernel) and the line again (``trimmed``). RSS
  that falls at the trim was memory the allocator kept after Python had freed it, not kept objects.
"""

from __future__ import annotations

import ctypes
import gc
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(label: str) -> None:
    current, peak = tracemalloc.get_traced_memory()
    print(f"TRACE {label} rss_mb={rss_mb():.1f} traced_mb={current / 1e6:.1f} traced_peak_mb={peak / 1e6:.1f} "
          f"objects={len(gc.get_objects())}", file=sys.stderr, flush=True)


def on_usr1(*_: Any) -> None:
    report("now")
    for stat in tracemalloc.take_snapshot().statistics("traceback")[:4]:  # who allocated what is still held
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in list(stat.traceback)[:6])
        print(f"TRACETOP {stat.size / 1e6:.1f} MB in {stat.count} blocks: {where}", file=sys.stderr, flush=True)
    print("TRACEEND", file=sys.stderr, flush=True)


def on_usr2(*_: Any) -> None:
    gc.collect()
    report("collected")  # what only reference cycles kept is gone now
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        print("TRACE malloc_trim is not available here", file=sys.stderr, flush=True)
    report("trimmed")


def main() -> None:
    app = Path(sys.argv[1]).resolve()
    tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "1")))  # more frames: who called it (slower)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    sys.argv = [str(app), *sys.argv[2:]]
    sys.path.insert(0, str(app.parent))
    os.chdir(app.parent)
    runpy.run_path(str(app), run_name="__main__")


if __name__ == "__main__":
    main()

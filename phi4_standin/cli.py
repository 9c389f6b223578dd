"""The stand-in's command line: ``python -m phi4_standin [--layout NAME] [--port P] [--pace-ms MS] ...``.

``--layout``: ``classic``, ``official`` or ``chatinterface`` (see ``space.py``; default ``space.DEFAULT_LAYOUT``).

Why a CLI: tests, the app and benchmarks start the stand-in as a separate process (``launcher``), so it
runs its own event loop and gradio queue exactly like a real server would.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

os.environ.setdefault("MPLBACKEND", "agg")  # gradio toggles the backend every streamed step; keep it cheap

from .server import StandinSettings, build_app
from .space import LAYOUTS
from .zerogpu import FAULTS


def parse_args(argv: list[str] | None = None) -> StandinSettings:
    d = StandinSettings()
    p = argparse.ArgumentParser(prog="python -m phi4_standin", description=__doc__)
    p.add_argument("--layout", choices=LAYOUTS, default=d.layout, help="the shape of the Space (see space.py)")
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--pace-ms", type=float, default=d.pace_ms, help="delay between streamed chunks")
    p.add_argument("--chunks", type=int, default=d.chunks, help="number of streamed chunks per reply")
    p.add_argument("--fault", choices=FAULTS, default=None, help="fault active from the start (every call)")
    p.add_argument("--gpus", type=int, default=d.gpus, help="concurrent bot steps (GPU slots)")
    p.add_argument("--queue-size", type=int, default=d.queue_size, metavar="N",
                   help="jobs gradio's queue holds waiting; one more is refused with HTTP 503 'Queue is full.'")
    p.add_argument("--quota-seconds", type=float, default=d.quota_seconds, help="signed-in GPU quota")
    p.add_argument("--anon-quota-seconds", type=float, default=d.anon_quota_seconds, help="anonymous quota")
    p.add_argument("--token-ttl", type=float, default=d.token_ttl, help="lifetime of issued JWTs, seconds")
    p.add_argument("--gpu-seconds-per-call", type=float, default=d.gpu_seconds_per_call)
    p.add_argument("--quota-window", type=float, default=d.quota_window, help="quota refills after this")
    p.add_argument("--slow-start-s", type=float, default=d.slow_start_s, help="delay of fault slow_start")
    p.add_argument("--drop-after", type=int, default=d.drop_after, help="chunks before drop_stream cuts")
    p.add_argument("--space-id", default=d.space_id, help="Hub id used in the Hub-side routes")
    p.add_argument("--hub-space", action="append", default=[], metavar="ID=STAGE[@URL]",
                   help="a Space of the Hub catalogue: its stage (RUNNING, RUNTIME_ERROR, SLEEPING, PAUSED, BUILDING, "
                        "...) and origin (repeatable; POST /standin/hub changes it at run time)")
    p.add_argument("--token-secret", metavar="HEX", help="the ZeroGPU token secret (hex): stand-ins that share it "
                                                          "trust each other's tokens, as Spaces trust the Hub's")
    p.add_argument("--private-allow", action="append", default=[], metavar="TOKEN",
                   help="make its own Space private: its Space routes need 'Authorization: Bearer TOKEN' with one of "
                        "these tokens (repeatable; 401 without one, 404 with another), and the Hub lists it as private")
    a = p.parse_args(argv)
    from .hub import parse_hub_space

    for text in a.hub_space:
        try:
            parse_hub_space(text)
        except ValueError as exc:
            p.error(f"--hub-space: {exc}")
    return StandinSettings(
        host=a.host,
        port=a.port,
        pace_ms=a.pace_ms,
        chunks=a.chunks,
        fault=a.fault,
        gpus=a.gpus,
        queue_size=a.queue_size,
        quota_seconds=a.quota_seconds,
        anon_quota_seconds=a.anon_quota_seconds,
        token_ttl=a.token_ttl,
        gpu_seconds_per_call=a.gpu_seconds_per_call,
        quota_window=a.quota_window,
        slow_start_s=a.slow_start_s,
        drop_after=a.drop_after,
        space_id=a.space_id,
        layout=a.layout,
        hub_spaces=tuple(a.hub_space),
        token_secret=a.token_secret,
        private_allow=tuple(a.private_allow),
    )


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    settings = parse_args(argv)
    import uvicorn

    app, _, _ = build_app(settings)
    where = f"http://{settings.host}:{settings.port}"
    print(f"stand-in Space ({settings.layout} layout) on {where}", file=sys.stderr, flush=True)
    # what gradio built at start out of the garbage collector's full walks (the app does the same: its
    # mirror/serve/launch.py says why); the stand-in's CPU is part of every benchmark and test
    gc.collect()
    gc.freeze()
    gc.collect()  # so full collections come as often as before for what is not frozen (mirror/serve/launch.py)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks``: run every figure against one Space, in one run, and write the report.

Phases (each bounded by turn counts and per-turn timeouts; loopback only unless ``--space-url`` says otherwise):
  1. warm-up turn per path (discarded);
  2. per-turn figures: paths 1-4 interleaved round by round, so machine noise hits them alike;
  3. uploads: a 5 MB image, then a turn that re-uses it (bridge, known client, app);
  4. token fetches over conversations of 4 turns (bridge, known client, app);
  5. concurrency sweep: N conversations at once, straight to the Space and through the app;
  6. long chats: the app's chat step with 0, 100, 200 and 400 earlier messages (app CPU per turn and per update),
     beside the same code updating the chat for every chunk (and another checkout's app, ``--compare-app``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from .phases import Context, announced, run_all
from .report import write_all

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer turns, sweep 1 and 10 (under two minutes)")
    p.add_argument("--out", type=Path, default=HERE, help="where results.json, REPORT.md, latency.png go")
    p.add_argument("--space-url", help="measure this Space instead of starting a stand-in")
    p.add_argument("--hub-url", help="its Hub origin (default: the Space URL)")
    p.add_argument("--space", default="microsoft/phi-4-multimodal", help="Hub id of the Space")
    p.add_argument("--pace-ms", type=float, default=5.0, help="stand-in: delay between chunks")
    p.add_argument("--chunks", type=int, default=60, help="stand-in: chunks per reply")
    p.add_argument("--gpus", type=int, default=128, help="stand-in: GPU slots (above the sweep's top level)")
    p.add_argument("--turns", type=int, help="timed turns per path (default 40, quick 8)")
    p.add_argument("--sweep", help="conversations at once, comma-separated (default 1,10,50,100; quick 1,10)")
    p.add_argument("--sweep-turns", type=int, help="turns per conversation in the sweep (default 3, and at least "
                   "30 in all at low levels, up to 20 a conversation; quick 2, exactly)")
    p.add_argument("--token-conversations", type=int, help="conversations of 4 turns (default 25, quick 5)")
    p.add_argument("--app-concurrency", type=int, help="app.py --concurrency (default: the app's own default)")
    p.add_argument("--app-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for app.py, e.g. --app-arg=--ui-updates-total-per-s=100 (repeatable)")
    p.add_argument("--no-app", action="store_true", help="skip path 4 and the sweep through the app")
    p.add_argument("--phases", default="turns,uploads,tokens,sweep,longchat",
                   help="comma-separated subset of turns,uploads,tokens,sweep,longchat (default: all)")
    p.add_argument("--longchat-turns", type=int, help="turns per level and app in the long-chat phase (default 4, "
                   "quick 2)")
    p.add_argument("--longchat-levels", help="earlier messages, comma-separated (default 0,100,200,400; quick 0,200)")
    p.add_argument("--compare-app", type=Path, metavar="APP_PY",
                   help="long chats: also measure this app.py (another checkout, e.g. the code before a change)")
    a = p.parse_args(argv)
    a.phases = {x.strip() for x in a.phases.split(",") if x.strip()}
    a.turns = a.turns or (8 if a.quick else 40)
    a.sweep_levels = [int(x) for x in (a.sweep or ("1,10" if a.quick else "1,10,50,100")).split(",") if x.strip()]
    a.sweep_turns = a.sweep_turns or (2 if a.quick else 3)
    a.token_conversations = a.token_conversations or (5 if a.quick else 25)
    a.longchat_turns = a.longchat_turns or (2 if a.quick else 4)
    a.longchat_levels = tuple(int(x) for x in (a.longchat_levels or ("0,200" if a.quick else "0,100,200,400"))
                              .split(",") if x.strip())
    if a.space_url:
        a.space_url = a.space_url.rstrip("/")
        a.hub_url = (a.hub_url or a.space_url).rstrip("/")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.time()
    ctx = Context(args)
    try:
        with announced("start the stand-in and the app"):
            ctx.start()
        results: dict[str, Any] = asyncio.run(run_all(ctx))
    finally:
        ctx.stop()
    results["meta"]["command"] = command.strip()
    results["meta"]["wall_s"] = round(time.time() - started, 1)
    paths = write_all(results, args.out)
    for path in paths:
        print(f"wrote {os.path.relpath(path)}")
    return 0

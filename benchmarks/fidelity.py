"""What doing the page's sequence costs: the bridge against a plain client doing the same (``page_client``), per
stand-in layout, side by side in one run; and what replaying a history the conversation never saw costs.

    python -m benchmarks.fidelity [--turns 20] [--layouts official,classic,chatinterface] [--replay-turns 5]

Each round is a two-turn conversation (an image and a question, then a text question) for each client, the
order alternating. First text: from sending to the first reply text in hand; total: to the end of the turn.
Replay: the same third turn sent with a history of ``--replay-turns`` earlier turns, to a conversation that did
them (restored, nothing asked of the Space) and to a fresh one (each earlier turn replayed through the Space's
user step). Writes ``benchmarks/fidelity.json`` and ``benchmarks/REPORT-fidelity.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from phi4_bridge import BridgeConfig, Done, Phi4Bridge, TextDelta
from phi4_standin.launcher import start_standin

from .page_client import PageClient
from .stats import TurnResult, percentile

HERE = Path(__file__).resolve().parent


async def bridge_turn(bridge: Phi4Bridge, conv: Any, prompt: str, files: list[str],
                      history: list[dict[str, Any]] | None = None) -> TurnResult:
    result = TurnResult("bridge", prompt, time.time())
    text = ""
    async with bridge.submit(prompt, files, conversation=conv, history=history) as job:
        async for event in job:
            if isinstance(event, TextDelta):
                text += event.text
                result.receipts.append((time.time(), len(text)))
            elif isinstance(event, Done):
                result.text = event.text
    result.done_at = time.time()
    return result


def ms(results: list[TurnResult], attr: str) -> float | None:
    values = [getattr(r, attr) for r in results if r.ok]
    p = percentile([v for v in values if v is not None], 50)
    return None if p is None else round(p * 1000, 2)


async def layout_figures(layout: str, turns: int, replay_turns: int, image: str) -> dict[str, Any]:
    standin = await asyncio.to_thread(start_standin, layout=layout, pace_ms=20, chunks=12, gpus=8,
                                      extra_args=("--anon-quota-seconds", "1e9", "--quota-seconds", "1e9"))
    try:
        cfg = BridgeConfig(space_url=standin.url, hub_url=standin.hub_url)
        async with Phi4Bridge(cfg) as bridge, aiohttp.ClientSession() as http:
            page = PageClient(http, standin.url)
            await page.start()
            by: dict[str, list[TurnResult]] = {"page_client": [], "bridge": []}

            async def page_round(i: int) -> list[TurnResult]:
                page.new_conversation()
                return [await page.turn(f"page {i} one", [image]), await page.turn(f"page {i} two")]

            async def bridge_round(i: int) -> list[TurnResult]:
                conv = bridge.conversation()
                return [await bridge_turn(bridge, conv, f"bridge {i} one", [image]),
                        await bridge_turn(bridge, conv, f"bridge {i} two", [])]

            await page_round(-1)
            await bridge_round(-1)  # warm-up: connections, the token, /config
            for i in range(turns):
                order = [("page_client", page_round), ("bridge", bridge_round)]
                for name, run in order if i % 2 == 0 else reversed(order):
                    by[name] += await run(i)
            errors = {name: sum(not r.ok for r in rs) for name, rs in by.items()}
            figures = {name: {"first_text_ms_p50": ms(rs, "first_text_s"), "total_ms_p50": ms(rs, "total_s")}
                       for name, rs in by.items()}

            restored, replayed = [], []
            for i in range(max(turns // 2, 3)):
                conv = bridge.conversation()
                history: list[dict[str, Any]] = []
                for k in range(replay_turns):
                    files = [image] if k == 0 else []
                    r = await bridge_turn(bridge, conv, f"earlier {i}.{k}", files)
                    content = [{"type": "file", "file": {"path": f}} for f in files]
                    history += [{"role": "user", "content": [*content, {"type": "text", "text": f"earlier {i}.{k}"}]},
                                {"role": "assistant", "content": [{"type": "text", "text": r.text}]}]
                restored.append(await bridge_turn(bridge, conv, "now", [], history))
                replayed.append(await bridge_turn(bridge, bridge.conversation(), "now", [], history))
            replay = {"earlier_turns": replay_turns,
                      "restored": {"first_text_ms_p50": ms(restored, "first_text_s")},
                      "replayed": {"first_text_ms_p50": ms(replayed, "first_text_s")}}
    finally:
        await asyncio.to_thread(standin.stop)
    return {"figures": figures, "errors": errors, "replay": replay, "turns": turns * 2}


def render(results: dict[str, Any]) -> str:
    lines = ["# Fidelity: the page's sequence, by the bridge and by a plain client", "",
             f"Command: `{results['command']}` (started {results['started']}; {results['seconds']:.0f} s).", "",
             "Stand-in per layout, 12 chunks 20 ms apart; each client does two-turn conversations (an image and a "
             "question, then a question), interleaved. The plain client (`benchmarks/page_client.py`) does the "
             "page's sequence and nothing else: no token, no checks, no retry.", "",
             "| layout | turns each | page client first p50 | bridge first p50 | bridge − page (first) | "
             "page client total p50 | bridge total p50 | errors (page / bridge) |",
             "|---|---|---|---|---|---|---|---|"]
    for layout, r in results["layouts"].items():
        p, b = r["figures"]["page_client"], r["figures"]["bridge"]
        diff = None if p["first_text_ms_p50"] is None or b["first_text_ms_p50"] is None \
            else round(b["first_text_ms_p50"] - p["first_text_ms_p50"], 2)
        lines.append(f"| {layout} | {r['turns']} | {p['first_text_ms_p50']} | {b['first_text_ms_p50']} | {diff} | "
                     f"{p['total_ms_p50']} | {b['total_ms_p50']} | {r['errors']['page_client']} / "
                     f"{r['errors']['bridge']} |")
    lines += ["", "## Replaying a history the conversation never saw (ms, first text p50)", "",
              "| layout | earlier turns | restored (conversation did them) | replayed (fresh conversation) | "
              "replay cost per earlier turn |", "|---|---|---|---|---|"]
    for layout, r in results["layouts"].items():
        rp = r["replay"]
        a, b = rp["restored"]["first_text_ms_p50"], rp["replayed"]["first_text_ms_p50"]
        per = None if a is None or b is None else round((b - a) / rp["earlier_turns"], 2)
        lines.append(f"| {layout} | {rp['earlier_turns']} | {a} | {b} | {per} |")
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        image = str(Path(tmp) / "red.png")
        Image.new("RGB", (64, 48), "red").save(image)
        layouts = {}
        for layout in args.layouts.split(","):
            layouts[layout] = await layout_figures(layout, args.turns, args.replay_turns, image)
            print(layout, json.dumps(layouts[layout]), flush=True)
    return {"command": "python -m benchmarks.fidelity " + " ".join(args.argv), "layouts": layouts,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__)
    parser.add_argument("--turns", type=int, default=20, help="two-turn conversations per client and layout")
    parser.add_argument("--layouts", default="official,classic,chatinterface")
    parser.add_argument("--replay-turns", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    args.argv = argv
    results = asyncio.run(main_async(args))
    (args.out / "fidelity.json").write_text(json.dumps(results, indent=2) + "\n")
    report = render(results)
    (args.out / "REPORT-fidelity.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

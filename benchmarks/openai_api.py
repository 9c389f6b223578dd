"""Benchmark of the OpenAI-compatible API: what ``/v1`` costs on top of the bridge, side by side in one run.

    python -m benchmarks.openai_api [--rounds 20] [--burst 50] [--pace-ms 20] [--chunks 12]

1. First text (request sent -> first reply text received), ``--rounds`` times each, interleaved so that load
   and warm-up fall alike on all three: the bridge in-process (no server at all), the app's ``/v1`` with the
   ``openai`` SDK (streamed), and the app's gradio ``/chat`` with ``gradio_client``.
2. ``--burst`` streamed ``/v1`` conversations at once (two turns each: the second carries the first as history,
   so the bridge replays it), on their own keys' limits: wall time, first text and whole-turn percentiles,
   errors, and the app's CPU seconds for the burst.

All servers run on loopback: a stand-in Space (official layout, large quotas, enough GPUs for the burst) and the
app. Figures go to stdout and to ``benchmarks/REPORT-openai.md``. They are this machine's, under whatever else
runs on it; the ratios matter more than the milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from gradio_client import Client
from openai import AsyncOpenAI

from phi4_bridge import BridgeConfig, Phi4Bridge, TextDelta
from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "REPORT-openai.md"
KEY = "bench-key"
MODEL = "phi-4-multimodal"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def first_text_bridge(bridge: Phi4Bridge, prompt: str) -> float:
    start = time.perf_counter()
    async with bridge.submit(prompt) as job:
        first = None
        async for event in job:
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter() - start
    return first if first is not None else float("nan")


async def first_text_v1(client: AsyncOpenAI, prompt: str) -> float:
    start = time.perf_counter()
    first = None
    stream = await client.chat.completions.create(model=MODEL, stream=True,
                                                  messages=[{"role": "user", "content": prompt}])
    async for c in stream:
        if first is None and c.choices and c.choices[0].delta.content:
            first = time.perf_counter() - start
    return first if first is not None else float("nan")


def first_text_gradio(client: Client, prompt: str) -> float:
    start = time.perf_counter()
    first = None
    for _ in client.submit({"text": prompt, "files": []}, api_name="/chat"):
        if first is None:
            first = time.perf_counter() - start
    return first if first is not None else float("nan")


async def conversation(client: AsyncOpenAI, n: int) -> tuple[list[float], list[float], str | None]:
    """Two streamed turns; (first-text times, whole-turn times, error)."""
    messages: list[dict[str, str]] = [{"role": "user", "content": f"conversation {n}, turn one"}]
    firsts, totals = [], []
    try:
        for turn in (1, 2):
            start = time.perf_counter()
            reply, first = "", None
            stream = await client.chat.completions.create(model=MODEL, stream=True, messages=messages)
            async for c in stream:
                if c.choices and c.choices[0].delta.content:
                    first = first or time.perf_counter() - start
                    reply += c.choices[0].delta.content
            firsts.append(first or float("nan"))
            totals.append(time.perf_counter() - start)
            if turn == 1:
                messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "turn two"}]
            elif "Earlier turns: 1." not in reply:
                return firsts, totals, "the second turn did not see the first"
    except Exception as exc:  # noqa: BLE001 - counted and shown, the burst goes on
        return firsts, totals, f"{type(exc).__name__}: {exc}"[:160]
    return firsts, totals, None


async def conversation_bridge(bridge: Phi4Bridge, n: int) -> tuple[list[float], list[float], str | None]:
    """The same two turns through the bridge in-process, the history given as the API gives it."""
    firsts, totals, history = [], [], None
    try:
        for turn, prompt in ((1, f"conversation {n}, turn one"), (2, "turn two")):
            start, first = time.perf_counter(), None
            async with bridge.submit(prompt, history=history) as job:
                async for event in job:
                    if isinstance(event, TextDelta):
                        first = first or time.perf_counter() - start
            firsts.append(first or float("nan"))
            totals.append(time.perf_counter() - start)
            history = [{"role": "user", "content": [{"type": "text", "text": prompt}]},
                       {"role": "assistant", "content": [{"type": "text", "text": job.reply}]}]
            if turn == 2 and "Earlier turns: 1." not in job.reply:
                return firsts, totals, "the second turn did not see the first"
    except Exception as exc:  # noqa: BLE001 - counted and shown, the burst goes on
        return firsts, totals, f"{type(exc).__name__}: {exc}"[:160]
    return firsts, totals, None


async def run(args: argparse.Namespace) -> str:
    quotas = ("--anon-quota-seconds", "1e9", "--quota-seconds", "1e9")
    with start_standin(pace_ms=args.pace_ms, chunks=args.chunks, gpus=args.burst + 8, extra_args=quotas) as standin:
        port = free_port()
        app = ServerProcess("app", [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                    "--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback",
                                    "--api-key", KEY, "--turns-per-client", str(args.burst * 2),
                                    "--concurrency", str(args.burst + 8)], port)
        with app:
            app.wait_ready("/", 120)
            v1 = AsyncOpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0, timeout=120)
            gradio = Client(app.url, verbose=False)
            config = BridgeConfig.from_env(space_url=standin.url, hub_url=standin.hub_url)
            times: dict[str, list[float]] = {"bridge in-process": [], "/v1 (openai SDK, streamed)": [],
                                             "gradio /chat (gradio_client)": []}
            async with Phi4Bridge(config) as bridge:
                for warm in range(2):  # first calls pay for /config, tokens, connections: not measured
                    await first_text_bridge(bridge, f"warm {warm}")
                    await first_text_v1(v1, f"warm {warm}")
                    await asyncio.to_thread(first_text_gradio, gradio, f"warm {warm}")
                for i in range(args.rounds):
                    times["bridge in-process"].append(await first_text_bridge(bridge, f"round {i}"))
                    times["/v1 (openai SDK, streamed)"].append(await first_text_v1(v1, f"round {i}"))
                    times["gradio /chat (gradio_client)"].append(
                        await asyncio.to_thread(first_text_gradio, gradio, f"round {i}"))
                start = time.perf_counter()
                in_process = await asyncio.gather(*(conversation_bridge(bridge, n) for n in range(args.burst)))
                bridge_wall = time.perf_counter() - start
            cpu0, start = cpu_seconds(app.pid), time.perf_counter()
            results = await asyncio.gather(*(conversation(v1, n) for n in range(args.burst)))
            wall, cpu = time.perf_counter() - start, cpu_seconds(app.pid) - cpu0
    return report(args, times, {"/v1 (openai SDK)": (results, wall, cpu), "bridge in-process": (in_process,
                                                                                              bridge_wall, None)})


def report(args: argparse.Namespace, times: dict[str, list[float]],
           bursts: dict[str, tuple[list, float, float | None]]) -> str:
    base = statistics.median(times["bridge in-process"])
    lines = [
        "# The OpenAI-compatible API: benchmark", "",
        f"`python -m benchmarks.openai_api --rounds {args.rounds} --burst {args.burst} --pace-ms {args.pace_ms} "
        f"--chunks {args.chunks}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f} at the end. Stand-in Space (official layout) and app on loopback; the "
        "figures are this machine's under its other load (shared with other test runs: medians and ratios vary "
        "from run to run by a factor of two).",
        "", "## First text (request sent -> first reply text), one turn at a time", "",
        "| path | median ms | p90 ms | min ms | median / bridge |", "|---|---|---|---|---|"]
    for name, values in times.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med * 1000:.0f} | {pct(values, 0.9) * 1000:.0f} | {min(values) * 1000:.0f} | "
                     f"{med / base:.2f} |")
    lines += ["", f"## {args.burst} streamed conversations at once (two turns each; the second carries the first "
              "as history)", "", "| figure | " + " | ".join(bursts) + " |", "|---|" + "---|" * len(bursts)]
    rows: dict[str, list[str]] = {k: [] for k in ("wall time", "turns completed", "errors", "first text p50 / p95",
                                                  "whole turn p50 / p95", "app CPU for the burst")}
    notes = []
    for name, (results, wall, cpu) in bursts.items():
        firsts = [f for r in results for f in r[0]]
        totals = [t for r in results for t in r[1]]
        errors = [r[2] for r in results if r[2]]
        rows["wall time"].append(f"{wall:.2f} s")
        rows["turns completed"].append(f"{len(totals)} of {2 * args.burst}")
        rows["errors"].append(str(len(errors)))
        rows["first text p50 / p95"].append(f"{pct(firsts, 0.5) * 1000:.0f} / {pct(firsts, 0.95) * 1000:.0f} ms")
        rows["whole turn p50 / p95"].append(f"{pct(totals, 0.5) * 1000:.0f} / {pct(totals, 0.95) * 1000:.0f} ms")
        rows["app CPU for the burst"].append("-" if cpu is None else
                                             f"{cpu:.2f} s ({cpu / max(len(totals), 1) * 1000:.0f} ms a turn)")
        notes += [f"- {name}: {e}" for e in sorted(set(errors))]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    if notes:
        lines += ["", "Errors:", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.openai_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--pace-ms", type=float, default=20)
    p.add_argument("--chunks", type=int, default=12)
    args = p.parse_args(argv)
    text = asyncio.run(run(args))
    print(text)
    REPORT.write_text(text)
    print(f"written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the MCP tools: what a tool call costs on top of the bridge, beside ``/v1``, in one run.

    python -m benchmarks.mcp_api [--rounds 20] [--burst 20] [--pace-ms 20] [--chunks 12]

1. Whole reply (call sent -> whole reply text received) for one question with a 53x29 PNG, ``--rounds`` times
   each, interleaved so that load and warm-up fall alike on all: the bridge in-process (no server at all), the
   app's ``/v1`` (``openai`` SDK, not streamed, the image as a data URL), the app's ``describe_image`` tool over
   one MCP session kept open (official ``mcp`` SDK), and the same tool with a new MCP session per call (connect,
   initialize, call: what a one-off client pays).
2. ``--burst`` tool calls at once, each on its own session, then on one shared session, then as many ``/v1``
   requests at once: wall time, whole-call percentiles, errors, and the CPU seconds of the app and of this
   process (the clients) for each burst.

Stand-in Space (official layout, large quotas, enough GPUs) and app (``--mcp``) on loopback. Figures go to stdout
and ``benchmarks/REPORT-mcp.md``; they are this machine's under its other load: the ratios matter more.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from openai import AsyncOpenAI
from PIL import Image

from phi4_bridge import BridgeConfig, Phi4Bridge
from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess, free_port

from .openai_api import cpu_seconds, pct

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "REPORT-mcp.md"
KEY = "bench-key"
QUESTION = "Describe this image in detail."


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (53, 29), "red").save(out, "PNG")
    return out.getvalue()


@asynccontextmanager
async def session(url: str) -> AsyncIterator[ClientSession]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=httpx.Timeout(120)) as http, \
            streamable_http_client(url, http_client=http) as (read, write, _), ClientSession(read, write) as mcp:
        await mcp.initialize()
        yield mcp


async def timed(call) -> tuple[float, str]:
    start = time.perf_counter()
    text = await call
    return time.perf_counter() - start, text


async def via_bridge(bridge: Phi4Bridge, path: str) -> str:
    return await bridge.chat(QUESTION, files=[path])


async def via_v1(client: AsyncOpenAI, image: str) -> str:
    answer = await client.chat.completions.create(model="phi-4-multimodal", messages=[{"role": "user", "content": [
        {"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": image}}]}])
    return answer.choices[0].message.content or ""


async def via_tool(mcp: ClientSession, image: str) -> str:
    result = await mcp.call_tool("describe_image", {"image": image})
    text = "".join(getattr(part, "text", "") for part in result.content)
    if result.isError:
        raise RuntimeError(text)
    return text


async def via_new_session(url: str, image: str) -> str:
    async with session(url) as mcp:
        return await via_tool(mcp, image)


async def run(args: argparse.Namespace) -> str:
    quotas = ("--anon-quota-seconds", "1e9", "--quota-seconds", "1e9")
    data = png_bytes()
    image = "data:image/png;base64," + base64.b64encode(data).decode()
    with tempfile.TemporaryDirectory() as folder, \
            start_standin(pace_ms=args.pace_ms, chunks=args.chunks, gpus=args.burst + 8, extra_args=quotas) as standin:
        path = os.path.join(folder, "shot.png")
        await asyncio.to_thread(Path(path).write_bytes, data)
        port = free_port()
        app = ServerProcess("app", [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                    "--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", "--mcp",
                                    "--api-key", KEY, "--turns-per-client", str(args.burst * 2),
                                    "--concurrency", str(args.burst + 8)], port)
        with app:
            app.wait_ready("/", 120)
            url = f"{app.url}/gradio_api/mcp/"
            v1 = AsyncOpenAI(base_url=f"{app.url}/v1", api_key=KEY, max_retries=0, timeout=120)
            config = BridgeConfig.from_env(space_url=standin.url, hub_url=standin.hub_url)
            names = ("bridge in-process", "/v1 (openai SDK, whole answer)", "MCP tool, one session kept open",
                     "MCP tool, a new session per call")
            times: dict[str, list[float]] = {name: [] for name in names}
            async with Phi4Bridge(config) as bridge, session(url) as mcp:
                calls = (lambda: via_bridge(bridge, path), lambda: via_v1(v1, image), lambda: via_tool(mcp, image),
                         lambda: via_new_session(url, image))
                for _ in range(2):  # first calls pay for /config, tokens, connections: not measured
                    for make in calls:
                        await make()
                for _ in range(args.rounds):
                    for name, make in zip(names, calls):
                        seconds, text = await timed(make())
                        assert "53x29" in text, text
                        times[name].append(seconds)
            bursts = {}
            async with session(url) as shared:
                for name, make in (("MCP tool, new sessions", lambda: via_new_session(url, image)),
                                   ("MCP tool, one shared session", lambda: via_tool(shared, image)),
                                   ("/v1 (openai SDK)", lambda: via_v1(v1, image))):
                    cpu0, mine0, start = cpu_seconds(app.pid), time.process_time(), time.perf_counter()
                    results = await asyncio.gather(*(timed(make()) for _ in range(args.burst)),
                                                   return_exceptions=True)
                    bursts[name] = (results, time.perf_counter() - start, cpu_seconds(app.pid) - cpu0,
                                    time.process_time() - mine0)
    return report(args, times, bursts)


def report(args: argparse.Namespace, times: dict[str, list[float]],
           bursts: dict[str, tuple[list, float, float, float]]) -> str:
    base = statistics.median(times["bridge in-process"])
    lines = [
        "# The MCP tools: benchmark", "",
        f"`python -m benchmarks.mcp_api --rounds {args.rounds} --burst {args.burst} --pace-ms {args.pace_ms} "
        f"--chunks {args.chunks}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f} at the end. Stand-in Space (official layout, a reply of "
        f"{args.chunks} chunks {args.pace_ms:g} ms apart) and app on loopback; one question with a 53x29 PNG. The "
        "figures are this machine's under its other load (shared with other developers' test runs).",
        "", "## Whole reply (call sent -> whole reply text), one call at a time", "",
        "| path | median ms | p90 ms | min ms | median - bridge ms |", "|---|---|---|---|---|"]
    for name, values in times.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med * 1000:.0f} | {pct(values, 0.9) * 1000:.0f} | {min(values) * 1000:.0f} | "
                     f"{(med - base) * 1000:+.0f} |")
    lines += ["", f"## {args.burst} calls at once", "",
              "| figure | " + " | ".join(bursts) + " |", "|---|" + "---|" * len(bursts)]
    rows: dict[str, list[str]] = {k: [] for k in ("wall time", "calls answered", "errors", "whole call p50 / p95",
                                                  "app CPU for the burst", "client CPU for the burst")}
    notes = []
    for name, (results, wall, cpu, client) in bursts.items():
        done = [r[0] for r in results if not isinstance(r, BaseException)]
        errors = sorted({f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)})
        rows["wall time"].append(f"{wall:.2f} s")
        rows["calls answered"].append(f"{len(done)} of {args.burst}")
        rows["errors"].append(str(len(errors)))
        rows["whole call p50 / p95"].append(f"{pct(done, 0.5) * 1000:.0f} / {pct(done, 0.95) * 1000:.0f} ms")
        rows["app CPU for the burst"].append(f"{cpu:.2f} s ({cpu / max(len(done), 1) * 1000:.0f} ms a call)")
        rows["client CPU for the burst"].append(f"{client:.2f} s")
        notes += [f"- {name}: {e}" for e in errors]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    if notes:
        lines += ["", "Errors:", *notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mcp_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--burst", type=int, default=20)
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

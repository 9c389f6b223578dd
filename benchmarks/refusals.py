"""What the outside probe's high findings of issue 27 cost the app, before and after: refused huge histories
(memory) and thousands of attachments sent to ``/v1`` (a bystander's latency).

    python -m benchmarks.refusals [--app-dir DIR] [--histories 60] [--history-mb 50] [--attachments 16000]
                                  [--arena-max N] [--no-trace]

Starts ``python app.py --standin`` (from ``--app-dir``, default this checkout) through ``benchmarks/traced_app.py``
(tracemalloc on; ``--no-trace`` runs app.py as is) and prints:

1. ``histories``: one client sends ``--histories`` chat turns whose history is ``--history-mb`` MB (half through
   ``/gradio_api/run/chat``, half as queue joins of one session hash with their event stream read), each refused
   by the app. The app's RSS before, right after, and after 10 s idle; then where the memory is: the bytes Python
   objects hold (tracemalloc) and the objects the collector tracks, the same and RSS after ``gc.collect()``, and
   RSS after ``malloc_trim(0)``. RSS that the trim gives back was kept by glibc's allocator (arenas), not by live
   objects. ``--arena-max N`` sets ``MALLOC_ARENA_MAX`` for the app (fewer arenas: less memory kept between
   requests).
2. ``attachments``: a bystander (another address) makes /chat turns one after another while one request with
   ``--attachments`` tiny images (in the history) goes to ``/v1/chat/completions``; the request's time and
   answer, the bystander's turns (p50, worst) during it, and one turn with nothing else going on.

Loopback only, bounded loops; a few minutes on the old code, about one on the new.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.resources import ENV, chat_fn, pct, rss_mb, turn
from phi4_standin.launcher import configure
from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
TRACED = Path(__file__).resolve().parent / "traced_app.py"
MB = 1024 * 1024


def start(app_dir: Path, cache: Path, trace: bool, arena_max: int | None) -> tuple[ServerProcess, str]:
    port = free_port()
    env = {**ENV, "GRADIO_TEMP_DIR": str(cache)}
    if arena_max:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    runner = [sys.executable, str(TRACED)] if trace else [sys.executable]
    app = ServerProcess("app", [*runner, str(app_dir / "app.py"), "--standin", "--standin-pace-ms", "5",
                                "--standin-chunks", "8", "--host", "127.0.0.1", "--port", str(port)], port, env=env)
    app.wait_ready("/", timeout=300)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"Stand-in Space running at (http://\S+)", app.log_text())
        if found:
            configure(found.group(1), quota_seconds=1e9, anon_quota_seconds=1e9)
            return app, found.group(1)
        time.sleep(0.2)
    raise RuntimeError("the stand-in's address is not in the app's log")


def trace_line(app: ServerProcess, sig: int, label: str) -> dict[str, float]:
    """Signal the traced app and read back its ``TRACE`` line (``{}`` when the app is not traced)."""
    before = len(app.log_text())
    os.kill(app.pid, sig)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = app.log_text()[before:]
        found = re.search(rf"TRACE {label} (.*)", log)
        if found:
            while label == "now" and "TRACEEND" not in app.log_text()[before:] and time.monotonic() < deadline + 60:
                time.sleep(0.2)  # the TRACETOP lines follow (a snapshot of a big heap takes a while)
            for line in re.findall(r"TRACETOP .*", app.log_text()[before:]):
                print("  " + line, flush=True)
            return {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
        time.sleep(0.1)
    return {}


def history_body(mb: int) -> list[dict]:
    text = "x" * (MB // 4)
    return [{"role": "user" if n % 2 == 0 else "assistant", "content": [{"type": "text", "text": text}]}
            for n in range(mb * 4)]


async def send(session: aiohttp.ClientSession, url: str, body: bytes) -> str:
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
            text = await resp.text()
            return f"{resp.status} {text[:60]}"
    except aiohttp.ClientError as exc:  # the server may close before the client finished sending
        return f"closed ({type(exc).__name__})"


async def histories(app: ServerProcess, n: int, mb: int, trace: bool) -> dict[str, object]:
    fn = await chat_fn(app.url)
    history = history_body(mb)
    session_hash = "probe" + secrets.token_hex(4)
    direct = json.dumps({"data": [{"text": "hi", "files": []}, history]}).encode()
    joined = json.dumps({"data": [{"text": "hi", "files": []}, history], "fn_index": fn,
                         "session_hash": session_hash}).encode()
    del history
    await asyncio.sleep(1)
    before = rss_mb(app.pid)
    answers: dict[str, int] = {}
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i in range(n):
            if i % 2 == 0:
                answer = await send(session, app.url + "/gradio_api/run/chat", direct)
            else:
                answer = await send(session, app.url + "/gradio_api/queue/join", joined)
                if answer.startswith("200"):  # accepted: read its stream, as the page would, until it ends
                    async with session.get(app.url + "/gradio_api/queue/data",
                                           params={"session_hash": session_hash}) as resp:
                        async for raw in resp.content:
                            if b"process_completed" in raw or b"close_stream" in raw:
                                break
            key = answer.split(" ", 1)[0]
            answers[key] = answers.get(key, 0) + 1
    took = time.perf_counter() - started
    after = rss_mb(app.pid)
    await asyncio.sleep(10)
    idle = rss_mb(app.pid)
    out: dict[str, object] = {"histories": n, "history_mb": mb, "answers": answers, "seconds": took,
                              "rss_before_mb": before, "rss_after_mb": after, "rss_after_idle_mb": idle}
    if trace:
        now = trace_line(app, signal.SIGUSR1, "now")
        before_trim = len(app.log_text())
        trimmed = trace_line(app, signal.SIGUSR2, "trimmed")
        found = re.search(r"TRACE collected (.*)", app.log_text()[before_trim:])
        collected = {k: float(v) for k, v in (p.split("=") for p in found.group(1).split())} if found else {}
        out.update({"python_objects_mb": now.get("traced_mb"), "gc_objects": now.get("objects"),
                    "python_objects_after_gc_mb": collected.get("traced_mb"),
                    "rss_after_gc_mb": collected.get("rss_mb"), "rss_after_trim_mb": trimmed.get("rss_mb")})
    return out


def tiny_png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def attachments(app: ServerProcess, n: int) -> dict[str, object]:
    fn = await chat_fn(app.url)
    image = {"type": "image_url", "image_url": {"url": tiny_png()}}
    body = json.dumps({"model": "phi-4-multimodal", "messages": [
        {"role": "user", "content": [image] * n}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "and now?"}]}).encode()
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        quiet = [await turn(session, app.url, fn, f"quiet {i}", "q" + secrets.token_hex(5), "10.253.0.1")
                 for i in range(5)]
        done = asyncio.Event()

        async def bystander() -> list[tuple[bool, float, str]]:
            out = []
            while not done.is_set():
                out.append(await turn(session, app.url, fn, "bystander", "b" + secrets.token_hex(5), "10.254.0.1"))
            return out

        watch = asyncio.create_task(bystander())
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        async with session.post(app.url + "/v1/chat/completions", data=body,
                                headers={"content-type": "application/json"}) as resp:
            answer = f"{resp.status} {(await resp.text())[:120]}"
        took = time.perf_counter() - started
        await asyncio.sleep(0.5)
        done.set()
        during = await watch
    waits = [s for _, s, _ in during]  # a turn that failed waited too: its seconds count
    return {"attachments": n, "request_s": took, "answer": answer, "bystander_turns": len(during),
            "bystander_ok": sum(ok for ok, _, _ in during), "bystander_p50_s": pct(waits, 0.5),
            "bystander_worst_s": max(waits or [0.0]), "bystander_errors": sorted({e for ok, _, e in during if not ok}),
            "quiet_p50_s": pct([s for ok, s, _ in quiet if ok], 0.5)}


def rounded(values: dict[str, object]) -> str:
    return json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.refusals", description=__doc__.splitlines()[0])
    p.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app.py to run (default: this one)")
    p.add_argument("--histories", type=int, default=60)
    p.add_argument("--history-mb", type=int, default=50)
    p.add_argument("--attachments", type=int, default=16_000)
    p.add_argument("--arena-max", type=int, default=None, help="MALLOC_ARENA_MAX for the app")
    p.add_argument("--no-trace", dest="trace", action="store_false", help="run app.py without tracemalloc")
    args = p.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="bench-refusals-"))
    app, standin_url = start(args.app_dir.resolve(), cache, args.trace, args.arena_max)
    try:
        print(f"# app: {args.app_dir.resolve()} (pid {app.pid}), stand-in {standin_url}, trace {args.trace}, "
              f"MALLOC_ARENA_MAX {args.arena_max or 'unset'}", flush=True)
        if args.histories:
            print("histories:   " + rounded(asyncio.run(histories(app, args.histories, args.history_mb, args.trace))),
                  flush=True)
        if args.attachments:
            print("attachments: " + rounded(asyncio.run(attachments(app, args.attachments))), flush=True)
    finally:
        app.stop()


if __name__ == "__main__":
    main()

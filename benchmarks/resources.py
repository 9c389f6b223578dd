"""Resources: what visitors, uploads and a flood of session hashes cost the app.

    python -m benchmarks.resources [--app-dir DIR] [--visitors 500] [--uploads 50] [--flood 200] [--ghosts 300]

Starts ``python app.py --standin`` (from ``--app-dir``, default this checkout, so an older checkout can be
measured with the same script) on loopback with a fast stand-in, and prints:

1. the app's memory (RSS) per idle visitor: ``--visitors`` visitors (each its own session hash and client
   address) make one /chat turn each; RSS before, after, and after the visitor idle limit has passed;
2. the upload cache: ``--uploads`` uploads of 1 MB, the cache's size after them, after the cache age has passed,
   and after the app exits;
3. bystanders under a flood: one address sends ``--flood`` turns under as many fresh session hashes (streams
   opened) and ``--ghosts`` queue joins whose streams are never opened, while 10 bystanders (other addresses)
   make 5 turns each; bystander latency p50/p99, refusals, and how many turns reached the Space.

The app gets short limits through its environment (cache age 5 s, visitor idle 5 s, stream grace 2 s; an older
checkout ignores them). Client addresses are set with ``X-Forwarded-For``, which uvicorn trusts from loopback.
Loopback only, bounded loops; takes two to three minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from phi4_standin.launcher import configure, stats
from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PHI4_CACHE_MAX_AGE": "5", "PHI4_VISITOR_IDLE": "5", "PHI4_STREAM_GRACE": "2"}
MAX_EVENTS = 10_000  # bounded read of one event stream


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_mb(root: Path) -> tuple[float, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6, len(files)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def turn(session: aiohttp.ClientSession, base: str, fn: int, text: str, session_hash: str,
               addr: str | None = None, open_stream: bool = True) -> tuple[bool, float, str]:
    """One /chat turn as the browser makes it (join, then the event stream); (ok, seconds, error)."""
    headers = {"X-Forwarded-For": addr} if addr else None
    start = time.perf_counter()
    try:
        async with session.post(f"{base}/gradio_api/queue/join", headers=headers,
                                json={"data": [{"text": text, "files": []}, None], "fn_index": fn,
                                      "session_hash": session_hash}) as resp:
            if resp.status != 200:
                return False, time.perf_counter() - start, f"join {resp.status}"
        if not open_stream:
            return True, 0.0, ""
        async with session.get(f"{base}/gradio_api/queue/data", params={"session_hash": session_hash},
                               headers=headers) as resp:
            count = 0
            async for raw in resp.content:
                count += 1
                if count > MAX_EVENTS:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    ok = bool(msg.get("success"))
                    err = "" if ok else str((msg.get("output") or {}).get("error") or msg)[:80]
                    return ok, time.perf_counter() - start, err
        return False, time.perf_counter() - start, "stream ended"
    except (TimeoutError, aiohttp.ClientError) as exc:
        return False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:80]


async def chat_fn(base: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(base + "/config") as resp:
        cfg = await resp.json()
    return next(d["id"] for d in cfg["dependencies"] if d.get("api_name") == "chat")


async def visitors(app: ServerProcess, n: int) -> dict[str, float]:
    fn = await chat_fn(app.url)
    limit = asyncio.Semaphore(25)
    await asyncio.sleep(1)
    before = rss_mb(app.pid)

    async def one(i: int) -> bool:
        async with limit:
            ok, _, _ = await turn(session, app.url, fn, f"visitor {i}", f"v{i}{secrets.token_hex(4)}",
                                  addr=f"10.{i // 250}.{i % 250}.1")
            return ok

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        oks = await asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.sleep(1)
        after = rss_mb(app.pid)
        await asyncio.sleep(float(ENV["PHI4_VISITOR_IDLE"]) + 2)
        await turn(session, app.url, fn, "after the idle limit", "late" + secrets.token_hex(4), addr="10.250.0.1")
        await asyncio.sleep(1)
        idle = rss_mb(app.pid)
    return {"visitors": n, "ok": sum(oks), "rss_before_mb": before, "rss_after_mb": after,
            "rss_after_idle_mb": idle, "kb_per_visitor": (after - before) * 1024 / n}


async def uploads(app: ServerProcess, cache: Path, n: int) -> dict[str, float]:
    blob = os.urandom(1024 * 1024)
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            form = aiohttp.FormData()
            form.add_field("files", blob[:-8] + i.to_bytes(8, "big"), filename=f"u{i}.wav",
                           content_type="audio/wav")
            async with session.post(app.url + "/gradio_api/upload", data=form) as resp:
                await resp.read()
    after_mb, after_files = size_mb(cache)
    await asyncio.sleep(float(ENV["PHI4_CACHE_MAX_AGE"]) * 2 + 3)
    aged_mb, aged_files = size_mb(cache)
    return {"uploads": n, "after_mb": after_mb, "after_files": after_files, "aged_mb": aged_mb,
            "aged_files": aged_files}


async def flood(app: ServerProcess, standin_url: str, n_flood: int, n_ghosts: int) -> dict[str, float]:
    fn = await chat_fn(app.url)
    calls_before = stats(standin_url)["calls"]
    timeout = aiohttp.ClientTimeout(total=240)
    # one connection per request: a pooled keep-alive connection the server closes while idle would show up as a
    # client-side error that is no fault of the app
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        baseline = [await turn(session, app.url, fn, f"quiet {i}", f"q{i}{secrets.token_hex(4)}", f"10.251.0.{i}")
                    for i in range(10)]

        async def bystander(i: int) -> list[tuple[bool, float, str]]:
            out = []
            for t in range(5):
                out.append(await turn(session, app.url, fn, f"bystander {i}.{t}", f"b{i}t{t}{secrets.token_hex(3)}",
                                      addr=f"10.252.0.{i}"))
            return out

        flooders = [turn(session, app.url, fn, f"flood {i}", f"f{i}{secrets.token_hex(4)}") for i in range(n_flood)]
        ghosts = [turn(session, app.url, fn, f"ghost {i}", f"g{i}{secrets.token_hex(4)}", open_stream=False)
                  for i in range(n_ghosts)]
        results = await asyncio.gather(asyncio.gather(*flooders), asyncio.gather(*ghosts),
                                       asyncio.gather(*(bystander(i) for i in range(10))))
        await asyncio.sleep(float(ENV["PHI4_STREAM_GRACE"]) + 15)  # let what was accepted run
    flood_res, ghost_res, by = results
    by_flat = [r for rows in by for r in rows]
    lat = [s for ok, s, _ in by_flat if ok]
    errors = sorted({e for ok, _, e in by_flat if not ok})
    return {
        "quiet_p50_s": pct([s for ok, s, _ in baseline if ok], 0.5),
        "bystander_turns": len(by_flat), "bystander_ok": len(lat), "bystander_p50_s": pct(lat, 0.5),
        "bystander_p99_s": pct(lat, 0.99), "bystander_errors": "; ".join(errors)[:200],
        "flood_turns": n_flood, "flood_served": sum(ok for ok, _, _ in flood_res),
        "ghost_joins": n_ghosts, "ghost_joins_accepted": sum(ok for ok, _, _ in ghost_res),
        "space_calls": stats(standin_url)["calls"] - calls_before,
    }


def start(app_dir: Path, cache: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    env = {**ENV, "GRADIO_TEMP_DIR": str(cache)}
    app = ServerProcess("app", [sys.executable, str(app_dir / "app.py"), "--standin", "--standin-pace-ms", "5",
                                "--standin-chunks", "8", "--host", "127.0.0.1", "--port", str(port)], port, env=env)
    app.wait_ready("/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"Stand-in Space running at (http://\S+)", app.log_text())
        if found:  # quotas out of the way: every turn comes from loopback, one anonymous quota
            configure(found.group(1), quota_seconds=1e9, anon_quota_seconds=1e9)
            return app, found.group(1)
        time.sleep(0.2)
    raise RuntimeError("the stand-in's address is not in the app's log")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.resources", description=__doc__.splitlines()[0])
    p.add_argument("--app-dir", type=Path, default=ROOT, help="checkout whose app.py to run (default: this one)")
    p.add_argument("--visitors", type=int, default=500)
    p.add_argument("--uploads", type=int, default=50)
    p.add_argument("--flood", type=int, default=200)
    p.add_argument("--ghosts", type=int, default=300)
    args = p.parse_args(argv)
    cache = Path(tempfile.mkdtemp(prefix="bench-resources-"))
    app, standin_url = start(args.app_dir.resolve(), cache)
    t0 = time.monotonic()
    try:
        print(f"# app: {args.app_dir.resolve()} (pid {app.pid}), stand-in {standin_url}", flush=True)
        v = asyncio.run(visitors(app, args.visitors))
        print("visitors: " + json.dumps({k: round(x, 1) if isinstance(x, float) else x for k, x in v.items()}),
              flush=True)
        u = asyncio.run(uploads(app, cache, args.uploads))
        print("uploads:  " + json.dumps({k: round(x, 1) if isinstance(x, float) else x for k, x in u.items()}),
              flush=True)
        f = asyncio.run(flood(app, standin_url, args.flood, args.ghosts))
        print("flood:    " + json.dumps({k: round(x, 2) if isinstance(x, float) else x for k, x in f.items()}),
              flush=True)
    finally:
        stopped = time.monotonic()
        app.proc.terminate()
        try:
            app.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            app.proc.kill()
        exit_s = time.monotonic() - stopped
        app.stop()
    left_mb, left_files = size_mb(cache)
    print(f"exit:     SIGTERM to exit {exit_s:.1f} s; cache left after exit {left_mb:.1f} MB in {left_files} files; "
          f"total run {time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""``python -m benchmarks.cluster``: the concurrency sweep through nginx with 1 and 2 app processes, side by side with
the app served directly, in one run; writes ``benchmarks/REPORT-cluster.md`` (and ``cluster.json``).

Why interleaved: at each level the three targets (the app direct, nginx + 1 replica, nginx + 2 replicas) run one
after the other against the same stand-in, so whatever else the shared machine does hits them alike. Why a
session per conversation: a browser keeps the cookie nginx sets (its replica); one shared client session without
cookies would send a turn's queue/join and its event stream to different replicas. Each turn is a new visitor of
the app's ``/chat`` (the same client as ``python -m benchmarks``' sweep), so a new visitor is placed round robin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from phi4_standin.launcher import start_standin
from phi4_standin.process import ServerProcess, free_port

from . import servers, sweep
from .stats import TurnResult, percentile, ratio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP_FLAGS = ["--turns-per-client", "100000"]  # every simulated visitor comes from loopback: one client address


def start_cluster(replicas: int, space_url: str) -> ServerProcess:
    port = free_port()
    args = [sys.executable, "-m", "mirror.cluster", "--replicas", str(replicas), "--port", str(port),
            "--space-url", space_url, "--hub-url", space_url, *APP_FLAGS]
    server = ServerProcess(f"cluster{replicas}", args, port)
    server.wait_ready("/config", 300)
    deadline = time.monotonic() + 30
    while "cluster ready at" not in server.log_text():  # printed just after nginx first answers
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the cluster never said it was ready:\n{server.log_tail()}")
        time.sleep(0.1)
    return server


def pids_of(server: ServerProcess) -> tuple[list[int], list[int]]:
    """The app processes that serve and nginx: from the cluster's ready line, else the server itself alone."""
    text = server.log_text()
    apps = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
    masters = [int(p) for p in re.findall(r"nginx (\d+) runs", text)]
    return (apps, masters + [pid for m in masters for pid in children(m)]) if apps else ([server.pid], [])


def children(parent: int) -> list[int]:
    """nginx's workers: the processes whose parent is its master (their CPU is not in the master's)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def conversations(target: sweep.Target, n: int, turns: int, tag: str) -> tuple[list[TurnResult], float]:
    """Like ``sweep.conversations``, but each conversation is its own client with its own cookies, as browsers are."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)

    async def conversation(c: int) -> list[TurnResult]:
        jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of an IP address (127.0.0.1)
        page = uuid.uuid4().hex[:11]  # one gradio session a conversation, as a browser page
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as session:
            return [await sweep.one_turn(session, target, f"{tag} c{c} t{t} {uuid.uuid4().hex[:6]}", page)
                    for t in range(turns)]

    started = time.monotonic()
    per_conv = await asyncio.gather(*(conversation(c) for c in range(n)))
    return [r for conv in per_conv for r in conv], time.monotonic() - started


def figures(results: list[TurnResult], wall: float, cpu: tuple[float, float], load: float) -> dict[str, Any]:
    ok = [r for r in results if r.ok]

    def ms(values: list[float | None], q: float) -> float | None:
        value = percentile([v for v in values if v is not None], q)
        return None if value is None else round(value * 1000, 1)

    return {"turns": len(results), "errors": len(results) - len(ok), "wall_s": round(wall, 2),
            "load_before": load,
            "turns_per_s": round(len(ok) / wall, 2) if wall else None,
            "first_p50_ms": ms([r.first_text_s for r in ok], 50), "first_p95_ms": ms([r.first_text_s for r in ok], 95),
            "total_p50_ms": ms([r.total_s for r in ok], 50), "total_p95_ms": ms([r.total_s for r in ok], 95),
            "app_cpu_s": round(cpu[0], 2), "nginx_cpu_s": round(cpu[1], 2),
            "first_errors": sorted({r.error for r in results if r.error})[:3]}


async def run(targets: dict[str, tuple[str, tuple[list[int], list[int]]]], levels: list[int],
              turns: int) -> list[dict[str, Any]]:
    found: dict[str, sweep.Target] = {}
    async with aiohttp.ClientSession() as session:
        for name, (url, _) in targets.items():
            found[name] = await sweep.find_target(session, name, url, "chat", "app")
    for target in found.values():
        await conversations(target, 2, 1, f"warm-up {target.name}")
    rows = []
    for i, n in enumerate(levels):
        level_turns = max(turns, min(20, 30 // n))  # more samples where they are cheap (as benchmarks.phases does)
        row: dict[str, Any] = {"conversations": n, "turns_per_conversation": level_turns}
        names = list(found)
        for name in names[i % len(names):] + names[:i % len(names)]:  # each target goes first at some level
            target = found[name]
            await asyncio.sleep(1.0)  # let the previous target's connections settle
            apps, nginx = targets[name][1]
            load = os.getloadavg()[0]
            cpu0 = (cpu_s(apps), cpu_s(nginx))
            results, wall = await conversations(target, n, level_turns, f"c{n} {name}")
            row[name] = figures(results, wall, (cpu_s(apps) - cpu0[0], cpu_s(nginx) - cpu0[1]), round(load, 1))
            print(f"  {n:>3} conversations, {name:<9} {row[name]['turns_per_s']} turns/s, first p50 "
                  f"{row[name]['first_p50_ms']} ms, errors {row[name]['errors']}", flush=True)
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    names = ["direct", "nginx+1", "nginx+2"]
    out = ["# The app behind nginx: 1 and 2 replicas against the app served directly", "",
           f"`{meta['command']}` on {meta['nproc']} cores ({meta['cpu']}), {meta['date']}, {meta['wall_s']} s. "
           f"Stand-in Space: {meta['pace_ms']} ms between chunks, {meta['chunks']} chunks a reply, "
           f"{meta['gpus']} GPUs. Each conversation is its own client keeping nginx's cookie, as a browser does; "
           "each turn is a new visitor of `/chat` (the app's queue: join, then the event stream). "
           "Ratios are against the app served directly at the same level (×1.00 = the same; turns/s above 1 is more "
           "throughput, latency above 1 is slower).", "",
           "| conversations | target | turns/s | ×direct | first text p50 / p95 ms | ×direct (p50) "
           "| whole turn p50 / p95 ms | app CPU s | nginx CPU s | load before | errors |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ref = row["direct"]
        for name in names:
            f = row[name]
            out.append(f"| {row['conversations']} × {row['turns_per_conversation']} | {name} | {f['turns_per_s']} | "
                       f"{_x(ratio(f['turns_per_s'], ref['turns_per_s']))} | {f['first_p50_ms']} / "
                       f"{f['first_p95_ms']} | {_x(ratio(f['first_p50_ms'], ref['first_p50_ms']))} | "
                       f"{f['total_p50_ms']} / {f['total_p95_ms']} | {f['app_cpu_s']} | {f['nginx_cpu_s']} | "
                       f"{f['load_before']} | {f['errors']} |")
    out += ["", "`app CPU s` and `nginx CPU s`: CPU seconds of the app process(es) and of nginx during the level. "
            "`load before`: the machine's 1-minute load average as the level started (2 cores: above 2, other work "
            "was competing for them). What the figures mean: docs/cluster.md.", ""]
    errors = {e for row in rows for n in names for e in row[n]["first_errors"]}
    if errors:
        out += ["Errors seen: " + "; ".join(sorted(errors)), ""]
    return "\n".join(out)


def _x(value: float | None) -> str:
    return "–" if value is None else f"×{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="1,10,40", help="conversations at once, comma-separated (default 1,10,40)")
    p.add_argument("--turns", type=int, default=3, help="turns per conversation (default 3)")
    p.add_argument("--pace-ms", type=float, default=20.0, help="stand-in: delay between chunks (default 20)")
    p.add_argument("--chunks", type=int, default=30, help="stand-in: chunks per reply (default 30)")
    p.add_argument("--gpus", type=int, default=128, help="stand-in: GPU slots (default 128: never the limit)")
    p.add_argument("--out", type=Path, default=HERE, help="where REPORT-cluster.md and cluster.json go")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    started = time.time()
    quotas = ("--anon-quota-seconds", "1e9", "--quota-seconds", "1e9")
    launched: list[ServerProcess] = []
    try:
        standin = start_standin(pace_ms=args.pace_ms, chunks=args.chunks, gpus=args.gpus, extra_args=quotas)
        launched.append(standin)
        direct = servers.start_app(standin.url, standin.url, None)  # adds --turns-per-client 100000 itself
        launched.append(direct)
        one, two = start_cluster(1, standin.url), None
        launched.append(one)
        two = start_cluster(2, standin.url)
        launched.append(two)
        targets = {"direct": (direct.url, pids_of(direct)), "nginx+1": (one.url, pids_of(one)),
                   "nginx+2": (two.url, pids_of(two))}
        rows = asyncio.run(run(targets, levels, args.turns))
    finally:
        for server in reversed(launched):
            server.stop()
    meta = {"command": "python -m benchmarks.cluster " + " ".join(sys.argv[1:] if argv is None else argv),
            "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wall_s": round(time.time() - started), "pace_ms": args.pace_ms, "chunks": args.chunks, "gpus": args.gpus,
            "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                         if line.startswith("model name")), "unknown")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps({"meta": meta, "levels": rows}, indent=1))
    (args.out / "REPORT-cluster.md").write_text(report(rows, meta))
    print(f"wrote {os.path.relpath(args.out / 'REPORT-cluster.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The phases of a run, each returning plain dicts for ``results.json``.

Why one ``Context``: every phase talks to the same Space (and the same app process), so the servers are started
once and each phase reads counter deltas (``/standin/stats``) and /proc deltas around its own work only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phi4_bridge import BridgeConfig, Phi4Bridge
from phi4_standin.process import ServerProcess

from . import long_chat, servers, sweep
from .known_client import KnownClient
from .paths import AppPath, ReferencePath, bridge_turn
from .stats import RssPeak, TurnResult, chunk_latencies, cpu_seconds, ratio, rss_bytes, summary

PATHS = ("reference", "known_client", "bridge", "app")


class Context:
    """Servers and clients shared by the phases."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.standin: servers.ServerProcess | None = None
        self.app: servers.ServerProcess | None = None
        self.space_url: str = args.space_url or ""
        self.hub_url: str = args.hub_url or ""
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        self.notes: list[str] = []

    def start(self) -> None:
        if not self.space_url:
            self.standin = servers.start_tapped_standin(self.args.pace_ms, self.args.chunks, self.args.gpus)
            self.space_url = self.hub_url = self.standin.url
        if not self.args.no_app:
            if servers.app_available():
                self.app = servers.start_app(self.space_url, self.hub_url, self.args.app_concurrency,
                                             self.args.app_arg)
            else:
                self.notes.append("app.py not found: path 4 and the app sweep were skipped")

    def stop(self) -> None:
        for server in (self.app, self.standin):
            if server is not None:
                server.stop()

    def config(self) -> BridgeConfig:
        return BridgeConfig(space=self.args.space, space_url=self.space_url, hub_url=self.hub_url)

    # ---- Space-side readings (absent on a real Space) --------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return servers.try_json(f"{self.space_url}/standin/stats") or {}

    def attach_stamps(self, results: list[TurnResult]) -> None:
        """The Space's chunk stamps for each turn: by its session hash, or via the tap's prompt -> session map; only
        those between the turn's start and its end (a session holds every turn of its conversation)."""
        by_prompt: dict[str, str] = servers.try_json(f"{self.space_url}/bench/sessions") or {}
        of_session: dict[str, list[list[float]]] = {}  # read once a session, not once a turn
        for result in results:
            session = result.remote_session or by_prompt.get(result.prompt)
            if session:
                if session not in of_session:
                    q = urllib.parse.quote(session)
                    of_session[session] = servers.try_json(f"{self.space_url}/standin/stamps?session_hash={q}") or []
                stamps = of_session[session]
                end = result.done_at or float("inf")
                result.stamps = [s for s in stamps if result.sent_at <= float(s[0]) <= end]

    def pid_cpu(self, server: servers.ServerProcess | None) -> float | None:
        return cpu_seconds(server.pid) if server is not None else None


def delta(after: dict[str, Any], before: dict[str, Any], key: str) -> int | None:
    return after[key] - before[key] if key in after and key in before else None


def path_figures(by_path: dict[str, list[TurnResult]]) -> dict[str, Any]:
    """First text, total and per-chunk latency per path, with ratios and differences to the reference."""
    out: dict[str, Any] = {}
    for name, results in by_path.items():
        good = [r for r in results if r.ok]
        lat = [x for r in good for x in chunk_latencies(r.receipts, r.stamps)]
        out[name] = {"turns": len(results), "errors": len(results) - len(good),
                     "error_samples": sorted({r.error for r in results if r.error})[:3],
                     "first_text_ms": summary(r.first_text_s for r in good),
                     "total_ms": summary(r.total_s for r in good),
                     "chunk_latency_ms": summary(lat),
                     "chunks_matched": len(lat)}
    ref = out.get("reference")
    for fig in out.values():
        for key in ("first_text_ms", "total_ms", "chunk_latency_ms"):
            for q in ("p50", "p99"):
                base = ref[key][q] if ref else None
                fig[key][f"ratio_{q}"] = ratio(fig[key][q], base)
                fig[key][f"minus_reference_{q}"] = (round(fig[key][q] - base, 2)
                                                    if fig[key][q] is not None and base is not None else None)
    return out


async def per_turn(ctx: Context, bridge: Phi4Bridge, known: KnownClient) -> dict[str, Any]:
    """Paths 1-4 interleaved, the order rotating each round; the app's CPU is read around its own turns."""
    ref = await asyncio.to_thread(ReferencePath, ctx.space_url)
    app = await asyncio.to_thread(AppPath, ctx.app.url) if ctx.app else None
    runners = {
        "reference": lambda p: asyncio.to_thread(ref.turn, p),
        "known_client": lambda p: _first(known.turn(p)),
        "bridge": lambda p: bridge_turn(bridge, p),
    }
    if app is not None:
        runners["app"] = lambda p: asyncio.to_thread(app.turn, p)
    for name, run in runners.items():  # warm-up: connections, token, first-call costs; discarded
        await run(f"warm-up {name} {time.time_ns()}")
    by_path: dict[str, list[TurnResult]] = {name: [] for name in runners}
    app_cpu, bridge_cpu = 0.0, 0.0
    standin_cpu0 = ctx.pid_cpu(ctx.standin)
    names = list(runners)
    for i in range(ctx.args.turns):
        for name in names[i % len(names):] + names[:i % len(names)]:
            cpu0, own0 = ctx.pid_cpu(ctx.app), time.process_time()
            result = await runners[name](f"bench {name} turn {i} {time.time_ns()}")
            if name == "app" and cpu0 is not None:
                app_cpu += (ctx.pid_cpu(ctx.app) or cpu0) - cpu0
            if name == "bridge":
                bridge_cpu += time.process_time() - own0
            by_path[name].append(result)
    standin_cpu = (ctx.pid_cpu(ctx.standin) or 0) - standin_cpu0 if standin_cpu0 is not None else None
    for results in by_path.values():
        ctx.attach_stamps(results)
    await asyncio.to_thread(ref.close)
    if app is not None:
        await asyncio.to_thread(app.close)
    figures = path_figures(by_path)
    total_chunks = sum(len(r.stamps) for rs in by_path.values() for r in rs)

    def per_1000(cpu: float | None, results: list[TurnResult]) -> dict[str, Any]:
        chunks = sum(len(r.stamps) for r in results) or sum(len(r.receipts) for r in results)
        return {"cpu_s": None if cpu is None else round(cpu, 3), "chunks": chunks,
                "cpu_s_per_1000_chunks": round(cpu / chunks * 1000, 3) if cpu is not None and chunks else None}

    cpu = {"bridge_in_benchmark_process": per_1000(bridge_cpu, by_path["bridge"]),
           "standin_all_paths": per_1000(standin_cpu, [r for rs in by_path.values() for r in rs])
           if total_chunks else None}
    if "app" in by_path:
        cpu["app_process"] = per_1000(app_cpu, by_path["app"])
    return {"figures": figures, "cpu": cpu}


async def _first(coro: Any) -> TurnResult:
    return (await coro)[0]


def noise_png(path: Path, megabytes: float = 5.0) -> Path:
    """A PNG of random pixels (PNG cannot compress noise, so the file is about ``megabytes`` MB)."""
    from PIL import Image

    side = int((megabytes * 1024 * 1024 / 3) ** 0.5)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG", compress_level=1)
    return path


async def uploads(ctx: Context, bridge: Phi4Bridge, known: KnownClient) -> dict[str, Any]:
    """A turn with a 5 MB image, then a turn that re-uses it; bytes the Space received for each."""
    image = noise_png(ctx.tmp / "photo.png")
    size = image.stat().st_size
    out: dict[str, Any] = {"image_bytes": size}

    async def measured(name: str, first: Any, second: Any) -> None:
        rows = []
        for label, step in (("turn_1_with_image", first), ("turn_2_reusing_it", second)):
            before = ctx.stats()
            result = await step()
            after = ctx.stats()
            rows.append({"turn": label, "ok": result.ok, "error": result.error,
                         "uploads": delta(after, before, "uploads"),
                         "upload_bytes": delta(after, before, "upload_bytes"),
                         "space_described_image": "Image 1:" in result.text if result.ok else None})
        out[name] = {"turns": rows, "reuploaded": bool(rows[1]["upload_bytes"])}

    conv = bridge.conversation()
    await measured("bridge", lambda: bridge_turn(bridge, f"describe {time.time_ns()}", [str(image)], conv),
                   lambda: bridge_turn(bridge, f"and again {time.time_ns()}", (), conv))
    media = [(image.read_bytes(), "photo.png")]
    state: dict[str, Any] = {}

    async def known_1() -> TurnResult:
        result, state["conv"] = await known.turn(f"describe {time.time_ns()}", media)
        return result

    async def known_2() -> TurnResult:  # the provider sends the conversation's media again with each call
        return (await known.turn(f"and again {time.time_ns()}", media, state["conv"]))[0]

    await measured("known_client", known_1, known_2)
    if ctx.app is not None:
        app = await asyncio.to_thread(AppPath, ctx.app.url)
        await measured("app", lambda: asyncio.to_thread(app.turn, f"describe {time.time_ns()}", [str(image)]),
                       lambda: asyncio.to_thread(app.turn, f"and again {time.time_ns()}", (), False))
        await asyncio.to_thread(app.close)
    return out


async def tokens(ctx: Context, known: KnownClient) -> dict[str, Any]:
    """Token fetches over ``token_conversations`` conversations of 4 turns each, per 100 turns."""
    n_conv, per_conv = ctx.args.token_conversations, 4
    turns = n_conv * per_conv
    out: dict[str, Any] = {"conversations": n_conv, "turns_per_conversation": per_conv}

    def row(fetches: int | None, page: int | None, errors: int) -> dict[str, Any]:
        return {"turns": turns, "errors": errors, "fetches": fetches, "hub_page_fetches_seen_by_space": page,
                "fetches_per_100_turns": None if fetches is None else round(fetches * 100 / turns, 2)}

    before = ctx.stats()
    errors = 0
    async with Phi4Bridge(ctx.config()) as bridge:  # a fresh bridge, so its first fetch counts
        for _ in range(n_conv):
            conv = bridge.conversation()
            for t in range(per_conv):
                errors += not (await bridge_turn(bridge, f"token bridge {t} {time.time_ns()}", (), conv)).ok
        out["bridge"] = row(bridge.tokens.fetches, delta(ctx.stats(), before, "token_page_fetches"), errors)
    before, start, errors = ctx.stats(), known.token_fetches, 0
    for _ in range(n_conv):
        result, conv = await known.turn(f"token known 0 {time.time_ns()}")
        errors += not result.ok
        for t in range(1, per_conv):
            errors += not (await known.turn(f"token known {t} {time.time_ns()}", None, conv))[0].ok
    out["known_client"] = row(known.token_fetches - start, delta(ctx.stats(), before, "token_page_fetches"), errors)
    if ctx.app is not None:
        app = await asyncio.to_thread(AppPath, ctx.app.url)
        before, errors = ctx.stats(), 0
        for _ in range(n_conv):
            for t in range(per_conv):
                errors += not (await asyncio.to_thread(app.turn, f"token app {t} {time.time_ns()}", (), t == 0)).ok
        page = delta(ctx.stats(), before, "token_page_fetches")
        out["app"] = row(page, page, errors)
        out["app"]["note"] = "counted at the Space (the app's long-lived bridge fetched its token at warm-up)"
        await asyncio.to_thread(app.close)
    return out


async def concurrency(ctx: Context) -> dict[str, Any]:
    """N conversations at once, straight to the Space and through the app, with the app's CPU and memory."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        targets = [await sweep.find_target(session, "space", ctx.space_url, "bot", "space"),
                   sweep.Target("page", ctx.space_url, -1, None, "page")]
        if ctx.app is not None:
            targets.append(await sweep.find_target(session, "app", ctx.app.url, "chat", "app"))
    for target in targets:  # warm-up (first-use allocations would count as memory per conversation)
        await sweep.conversations(target, 2, 1, f"sweep warm-up {target.name}")
    levels: list[dict[str, Any]] = []
    for n in ctx.args.sweep_levels:
        # more samples where they are cheap, but --quick (a smoke run) takes exactly --sweep-turns
        turns = ctx.args.sweep_turns if ctx.args.quick else max(ctx.args.sweep_turns, min(20, 30 // n))
        level: dict[str, Any] = {"conversations": n, "turns_per_conversation": turns}
        for target in targets:
            await asyncio.sleep(1.0)  # let the previous level's connections settle
            server = ctx.app if target.name == "app" else ctx.standin
            cpu0, rss0 = ctx.pid_cpu(server), rss_bytes(server.pid) if server else None
            _, parts_before = servers.turn_parts(ctx.app.log_text()) if target.name == "app" and ctx.app else ([], 0)
            peak = RssPeak(server.pid) if server else None
            if peak:
                peak.__enter__()
            try:
                results, wall = await sweep.conversations(target, n, turns, f"sweep{n} {target.name}")
            finally:
                if peak:
                    peak.__exit__()
            cpu = (ctx.pid_cpu(server) or 0) - cpu0 if cpu0 is not None else None
            ctx.attach_stamps(results)
            fig = path_figures({target.name: results})[target.name]
            chunks = sum(len(r.stamps) for r in results)
            fig.update({"wall_s": round(wall, 2), "chunks": chunks,
                        "server_cpu_s_per_1000_chunks": round(cpu / chunks * 1000, 3) if cpu and chunks else None,
                        "server_rss_mb_before": round(rss0 / 2**20, 1) if rss0 else None,
                        "server_rss_mb_peak": round(peak.peak / 2**20, 1) if peak else None,
                        "server_rss_kb_per_conversation": round((peak.peak - rss0) / 1024 / n, 1)
                        if peak and rss0 else None})
            if target.name == "app" and ctx.app is not None:
                fig["parts_ms_p50"] = parts_p50(servers.turn_parts(ctx.app.log_text(), parts_before)[0])
            level[target.name] = fig
        if "app" in level:
            app = get_p50(level, "app")  # against the bot step alone, and against the page's whole turn
            level["app_first_text_p50_over"] = {t: round(app / ref, 2) for t in ("space", "page")
                                                if app and (ref := get_p50(level, t))}
            for q in ("p50", "p99"):
                a, s = level["app"]["chunk_latency_ms"][q], level["space"]["chunk_latency_ms"][q]
                level[f"app_added_chunk_latency_{q}_ms"] = round(a - s, 2) if a is not None and s is not None else None
        levels.append(level)
    return {"levels": levels, "client": "aiohttp, gradio's queue protocol (as a browser's JS client)"}


async def long_chats(ctx: Context) -> dict[str, Any]:
    """The app's chat step in long chats: this code, the same code with an update for every chunk (the frame rate
    off), and ``--compare-app``'s app when given; each a process of its own, measured turn by turn."""
    assert ctx.app is not None
    extra: dict[str, ServerProcess] = {}
    try:
        extra["every_chunk"] = await asyncio.to_thread(servers.start_app, ctx.space_url, ctx.hub_url,
                                                      ctx.args.app_concurrency, ["--ui-updates-per-s", "0"])
        if ctx.args.compare_app:
            extra["compared"] = await asyncio.to_thread(servers.start_app, ctx.space_url, ctx.hub_url,
                                                       ctx.args.app_concurrency, [], ctx.args.compare_app.resolve())
        apps = {"app": (ctx.app.url, ctx.app.pid)} | {name: (s.url, s.pid) for name, s in extra.items()}
        out = await long_chat.measure(apps, ctx.args.longchat_turns, ctx.args.longchat_levels)
    finally:
        for server in extra.values():
            server.stop()
    return {"apps": out, "compared_app": str(ctx.args.compare_app) if ctx.args.compare_app else None,
            "levels": list(ctx.args.longchat_levels), "turns_per_level": ctx.args.longchat_turns}


def get_p50(level: dict[str, Any], target: str) -> float | None:
    return (level.get(target) or {}).get("first_text_ms", {}).get("p50")


def parts_p50(rows: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each part of the app's turns (ms; see ``TurnRecord`` in mirror/chat/handlers.py)."""
    keys = dict.fromkeys(k for row in rows for k in row)
    return {"turns": len(rows)} | {k: summary([row[k] / 1000 for row in rows if k in row])["p50"] for k in keys}


def machine() -> dict[str, Any]:
    import aiohttp
    import gradio
    import gradio_client

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "gradio": gradio.__version__, "gradio_client": gradio_client.__version__, "aiohttp": aiohttp.__version__,
            "platform": platform.platform()}


@contextmanager
def announced(name: str) -> Iterator[None]:
    """A phase says when it starts and how long it took: a full run takes minutes, and the time is where to look
    first when a run gets slower."""
    print(f"phase: {name}", flush=True)
    began = time.monotonic()
    yield
    print(f"phase: {name}: {time.monotonic() - began:.1f} s", flush=True)


async def run_all(ctx: Context) -> dict[str, Any]:
    a = ctx.args
    results: dict[str, Any] = {"meta": {
        "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": a.quick,
        "space_url": ctx.space_url if a.space_url else "stand-in (started by the run)",
        "standin": None if a.space_url else {"pace_ms": a.pace_ms, "chunks": a.chunks, "gpus": a.gpus},
        "app": None if ctx.app is None else {"concurrency": a.app_concurrency or "app default",
                                             **({"args": a.app_arg} if a.app_arg else {})},
        "turns_per_path": a.turns, "sweep_levels": a.sweep_levels, "notes": ctx.notes}}
    stamps_ok = servers.try_json(f"{ctx.space_url}/standin/stats") is not None
    if not stamps_ok:
        ctx.notes.append("the Space has no /standin routes: no chunk stamps, upload bytes or token counts there")
    known = KnownClient(ctx.space_url, ctx.hub_url, a.space)
    async with Phi4Bridge(ctx.config()) as bridge:
        if "turns" in a.phases:
            with announced("per-turn figures"):
                turn = await per_turn(ctx, bridge, known)
            results["first_text"] = {p: f["first_text_ms"] for p, f in turn["figures"].items()}
            results["total"] = {p: f["total_ms"] for p, f in turn["figures"].items()}
            results["chunk_latency"] = {p: f["chunk_latency_ms"] for p, f in turn["figures"].items()}
            results["errors"] = {p: {"turns": f["turns"], "errors": f["errors"], "samples": f["error_samples"]}
                                 for p, f in turn["figures"].items()}
            results["cpu_per_1000_chunks"] = turn["cpu"]
        if "uploads" in a.phases:
            with announced("uploads"):
                results["uploads"] = await uploads(ctx, bridge, known)
    if "tokens" in a.phases:
        with announced("token fetches"):
            results["token_fetches"] = await tokens(ctx, known)
    if "sweep" in a.phases:
        with announced("concurrency sweep"):
            results["concurrency"] = await concurrency(ctx)
    if "longchat" in a.phases and ctx.app is not None:
        with announced("long chats"):
            results["long_chat"] = await long_chats(ctx)
    return results

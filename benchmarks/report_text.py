"""The Markdown of REPORT.md: the command, the machine, the figures as tables, the chart, what they mean.

Why generated: the report is rewritten by every run, so its sentences are built from the run's own numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import long_chat


def render(r: dict[str, Any], verdicts: list[dict[str, Any]], chart: str | None, table: Callable[..., str],
           names: dict[str, str], get: Callable[..., Any]) -> str:
    meta, m = r.get("meta", {}), r.get("meta", {}).get("machine", {})
    s: list[str] = ["# Benchmarks: what the mirror costs on top of the Space", ""]
    s += [f"Command: `{meta.get('command', 'python -m benchmarks')}` ({meta.get('wall_s', '?')} s, started "
          f"{meta.get('started', '?')}).", "",
          f"Machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), Python {m.get('python')}, gradio {m.get('gradio')},"
          f" gradio_client {m.get('gradio_client')}, aiohttp {m.get('aiohttp')}; {m.get('platform')}.", "",
          f"Space: {meta.get('space_url')}; stand-in settings {meta.get('standin')}; app {meta.get('app')}; "
          f"{meta.get('turns_per_path')} timed turns per path, interleaved round by round.", ""]
    for note in meta.get("notes") or []:
        s.append(f"- Note: {note}")
    s += ["", "## Targets", "",
          table(["target", "figure", "verdict", "judged on"],
                [[v["target"], v["figure"], f"**{v['verdict']}**", v["how"]] for v in verdicts]), ""]

    s += ["## One turn at a time (ms)", "",
          "First text: from sending to the first reply text in hand. Total: to the end of the turn. Chunk latency: "
          "for each chunk the Space stamped when sending it, the time the client first held that much reply text "
          "minus the stamp (same machine, same clock); the known client holds text only at the end, so its chunks "
          "wait for the whole reply.", ""]
    rows = []
    for p in ("reference", "known_client", "bridge", "app"):
        ft, tt, cl = get(r, "first_text", p), get(r, "total", p), get(r, "chunk_latency", p)
        if ft is None:
            continue
        rows.append([names[p], ft["p50"], ft["p99"], ft["ratio_p50"], tt["p50"], tt["p99"], tt["ratio_p50"],
                     cl["p50"], cl["p99"], cl["minus_reference_p50"], get(r, "errors", p, "errors")])
    s += [table(["path", "first p50", "first p99", "first ×ref", "total p50", "total p99", "total ×ref",
                 "chunk p50", "chunk p99", "chunk p50 − ref", "errors"], rows), ""]

    cpu = r.get("cpu_per_1000_chunks") or {}
    s += ["## CPU per 1,000 chunks relayed (s)", "",
          table(["process", "CPU s", "chunks", "CPU s / 1,000 chunks"],
                [[k.replace("_", " "), v.get("cpu_s"), v.get("chunks"), v.get("cpu_s_per_1000_chunks")]
                 for k, v in cpu.items() if v]), "",
          "`app process`: utime+stime of app.py from /proc around its own turns (gradio server, bridge, relay). "
          "`bridge in benchmark process`: this process's CPU during bridge turns (bridge plus its caller). "
          "`standin all paths`: the Space itself, for scale.", ""]

    up = r.get("uploads") or {}
    rows = []
    for p in ("bridge", "known_client", "app"):
        for row in get(up, p, "turns") or []:
            rows.append([names[p], row["turn"], row["uploads"], row["upload_bytes"], row["error"] or ""])
    s += [f"## Uploads: a {up.get('image_bytes', 0) / 2**20:.2f} MB image, then a turn that re-uses it", "",
          table(["path", "turn", "upload requests", "bytes received by the Space (multipart body)", "error"],
                rows), ""]

    tk = r.get("token_fetches") or {}
    s += [f"## Token fetches ({tk.get('conversations')} conversations × {tk.get('turns_per_conversation')} turns)",
          "", table(["path", "turns", "fetches", "Hub page fetches seen by the Space", "per 100 turns", "errors"],
                    [[names[p], get(tk, p, "turns"), get(tk, p, "fetches"),
                      get(tk, p, "hub_page_fetches_seen_by_space"), get(tk, p, "fetches_per_100_turns"),
                      get(tk, p, "errors")] for p in ("bridge", "known_client", "app") if p in tk]), ""]

    levels = get(r, "concurrency", "levels") or []
    per_level = ", ".join(f"{lv['conversations']} at once: {lv['turns_per_conversation']}" for lv in levels)
    rows = []
    for lv in levels:
        for t in ("space", "page", "app"):
            f = lv.get(t)
            if f:
                rows.append([lv["conversations"], TARGET_NAMES[t],
                             f["turns"], f["errors"], f["first_text_ms"]["p50"], f["first_text_ms"]["p99"],
                             f["chunk_latency_ms"]["p50"], f["chunk_latency_ms"]["p99"], f["wall_s"],
                             f["server_cpu_s_per_1000_chunks"], f["server_rss_mb_peak"],
                             f["server_rss_kb_per_conversation"]])
    s += ["## Conversations at once", "",
          f"Client: {get(r, 'concurrency', 'client')}; every conversation starts together and runs its turns in a "
          f"row ({per_level} turns each). 'Space direct' calls the bot step alone; 'Space's page' runs a turn as "
          "the Space's own page does (`benchmarks/page_client.py`: the user step, the bot step, the step after), "
          "as the app's bridge does. Server columns are the process serving that row (the stand-in for both "
          "Space rows, app.py for 'app').", "",
          table(["at once", "to", "turns", "errors", "first p50", "first p99", "chunk p50", "chunk p99", "wall s",
                 "server CPU s/1k chunks", "server RSS MB peak", "RSS KB / conversation"], rows), ""]
    added = [[lv["conversations"], get(lv, "app_first_text_p50_over", "space"),
              get(lv, "app_first_text_p50_over", "page"), lv.get("app_added_chunk_latency_p50_ms"),
              lv.get("app_added_chunk_latency_p99_ms")] for lv in levels if "app" in lv]
    if added:
        s += ["The app against the Space at the same concurrency: its first text p50 over the Space's (x), and the "
              "per-chunk latency it adds (app minus Space direct, ms):", "",
              table(["at once", "first text / Space direct", "first text / Space's page", "added chunk p50",
                     "added chunk p99"], added), ""]
    parts = [[lv["conversations"], *(get(lv, "app", "parts_ms_p50", k) for k in PARTS)]
             for lv in levels if get(lv, "app", "parts_ms_p50", "turns")]
    if parts:
        s += ["Where the app's first text goes (medians over the level's turns, ms, from the app's own clock: "
              "`TurnRecord` in mirror/chat/handlers.py). Queue hop: gradio's, from the join to the chat handler (a new "
              "session builds gradio's per-session config of every block of the page first; the turn slots "
              "`--concurrency` wait here too). Stream and budget: the wait for the turn's event stream, the turn "
              "cap and the budget. Bridge: from the turn's start to its uploads done, to the steps before the "
              "reply's done (the Space's user step, which the Space's page runs too and 'Space direct' skips), "
              "and to its first text (then the bot step: its join, the Space's queue, its first words). Usage "
              "write: after the last words, off the way to the first.", "",
              table(["at once", "turns", "queue hop", "stream and budget", "bridge: uploads done",
                     "bridge: user step done", "bridge: first text", "handler: first text", "usage write"],
                    parts), ""]
    if chart:
        s += [f"![latency against concurrency]({chart})", ""]
    s += long_chat.report_lines(r, table)
    if get(r, "long_chat", "apps") or parts:
        s += ISSUE_24_NOTES + [""]
    s += ["## What the figures mean", ""] + meaning(r, get) + [""]
    s += history(r, table, get, Path(__file__).with_name("history"))
    return "\n".join(s)


TARGET_NAMES = {"space": "Space direct", "page": "Space's page", "app": "app"}

ISSUE_24_NOTES = [
    "What profiling found in long chats and with many visitors (issue 24; py-spy on the app, 2026-12-06):",
    "",
    "- Long chats: with 200 earlier messages, a third of the app's CPU per streamed update was gradio's Chatbot "
    "postprocess rebuilding every message as pydantic models (and dumping them again), another fifth its walks "
    "of the whole value (files to cache twice, root URL once) and the diff with the previous update. The "
    "earlier messages are now made once per turn (`mirror/chat/chatbot.py`: the same message objects in every "
    "update), and a reply updates the chat at most 20 times a second (`mirror/chat/pacing.py`), so a fast Space no "
    "longer multiplies the whole-chat work by its chunk rate. A turn that brings a history its conversation never "
    "saw (a reload on another replica, an edited chat) is restored by the bridge: seconds at 200 messages (last "
    "column), which is the chain's work.",
    "- Long chats, 2026-12-07 (py-spy `--gil` on the app, 12 turns at 0 and at 200 earlier messages): that left "
    "the app at 2.22x a first turn's CPU. Two causes grew with the chat. gradio's two walks of every update "
    "looking for files (into its cache, then its root URL onto their URLs: `gradio_client.utils.traverse`), which "
    "copy the whole chat each time; they now pass over the messages that hold no file "
    "(`mirror/door/gradio_internals.pass_over_file_free`, vouched for by `mirror/chat/chatbot.py`), and gradio's "
    "diff then meets the same objects and passes them by identity. And Python's full garbage collections, which "
    "walked everything gradio built at start, 60 to 180 ms each, a few per turn at 200 messages (such turns make "
    "many objects, so collections come often): the app and the stand-in now freeze their start-up objects out of "
    "the collector (`gc.freeze` once started, `mirror/serve/launch.py`). App CPU per turn at 200 earlier "
    "messages against none, `python -m benchmarks --phases longchat`: 2.22x before, 1.52x after (1.24x per "
    "update; 2.08x at the history limit of 400).",
    "- `--compare-app` in the run above was this repository at commit 6bc0977 (the code before issue 24), "
    "extracted with `git archive` and started beside this code against the same stand-in.",
    "- Many visitors: the table of parts shows where the app's first text goes. The budget, the turn cap, the wait "
    "for the event stream and the usage write cost well under a millisecond each (the usage row is written "
    "after the last words, the badge is refreshed after the turn: neither is on the way to the first words). "
    "The app's extra time is gradio's queue hop (at 50 and 100 conversations: the 32 turn slots of "
    "`--concurrency` are full, and each new session makes gradio build its per-session config of every block "
    "of the page, about a fifth of the app's CPU at 50 conversations in this sweep, whose client takes a new "
    "session for every turn where a browser keeps one per page) and the bridge's two round trips to the Space "
    "(user step, then bot step), each through the Space's queue.",
    "- At 40 chunks a second (`python -m benchmarks --pace-ms 25 --chunks 40 --sweep 1,10,50 --sweep-turns 2 "
    "--phases sweep`, 2026-12-06 03:34 UTC): first text p50 at 50 conversations 1,008 ms through the app against "
    "374 ms straight to the Space (2.7x; the issue measured 4.3x on a busier day); its parts: queue hop 589 ms, "
    "the bridge's first text 306 ms, stream wait and budget 0.04 ms, usage write 0.12 ms. The same with "
    "`--app-concurrency 64`: 1,001 ms, the queue hop down to 378 ms and the bridge's first text up to 438 ms: "
    "the two cores (stand-in, app and client share them), not the turn slots, set the pace, so the default "
    "stays 32.",
    "- The same command on 2026-12-07 00:09 UTC, the sweep's conversations now keeping one gradio session each as "
    "a browser page does (before, a new session every turn): first text p50 at 50 conversations 1,560 ms through "
    "the app against 503 ms straight to the Space (3.1x, issue 24's target of 2x still missed); at 10, 205 against "
    "56 ms. Parts at 50: queue hop 499 ms (50 conversations, 32 turn slots), the bridge's first text 562 ms, "
    "stream wait and budget 0.05 ms, usage write 0.40 ms. Added chunk p99 at 50: -128 ms (met). The app used 2.88 "
    "CPU s per 1,000 chunks at 50 conversations: 2,000 chunks a second would need more than the two cores the "
    "stand-in, the app and the client share, so the first words wait for CPU; a real model streams far fewer "
    "chunks a second.",
    "- The same command on 2026-12-07 21:15 UTC, after the long-chat changes above: first text p50 at 50 "
    "conversations 1,098 ms through the app against 288 ms straight to the Space (3.8x; missed); at 10, 163 "
    "against 50 ms; at 1, 36 against 11 ms. Parts at 50: queue hop 475 ms, the bridge's first text 366 ms. The "
    "app used 2.14 CPU s per 1,000 chunks at 50 (2.88 the day before), the stand-in 0.78. With "
    "`--app-concurrency 64`: 1,382 against 367 ms (3.8x), the queue hop 333 ms and the bridge's first text 471 ms "
    "(the cores again, not the slots). Even at one conversation the app's path has the app's own queue hop (7 "
    "ms) and the bridge's two trips through the Space (its user step, then its bot step: 24 ms) where the direct "
    "client makes one; under load each of those waits for CPU.",
    "- Then the replies streaming at once were made to share at most 200 chat updates a second "
    "(`--ui-updates-total-per-s`, `mirror/chat/pacing.shared_frame`; each still at most 20): at 50 conversations "
    "4 a second each. The same sweep, 2026-12-07 22:07 UTC: first text p50 at 50 conversations 943 ms through the "
    "app against 322 ms straight to the Space (2.9x, from 3.8x; still missed); queue hop 337 ms, the bridge's first "
    "text 230 ms; the app's CPU 1.92 s per 1,000 chunks (from 2.14). At 1 and 10 conversations nothing changes "
    "(each visitor keeps 20 a second): 33 against 9 ms, 228 against 63 ms.",
    "- Where the app's CPU goes at 50 conversations after that (py-spy `--gil` on the app, 25 s of `--sweep 50 "
    "--sweep-turns 4 --phases sweep`, 766 samples): gradio's per-update output work 11 % (`postprocess_data`, "
    "with its per-session config of the page's blocks for each new session), the bridge 12 %, gradio's queue and "
    "`process_api` 25 %, uvicorn's and gradio's sending of the event streams 15 %, starlette's "
    "`Request.is_disconnected` 4 %, gradio's queue analytics (a pandas DataFrame every few events) 3 %; no one "
    "part to remove, spread over gradio's machinery.",
    "- Stop 37 (the section of that name below): two of the figures above were wrong. The app's CPU per 1,000 "
    "chunks counted only the last turn of each conversation (the stand-in's tap), so it read 2 to 20 times too "
    "high; and the sweep's `/chat` was not paced, so the shared frame could not have moved its first text. "
    "Then: gradio's queue sized to the turn slots (it ran 40 events at most), `/chat` paced, the chat steps' "
    "updates made on the loop instead of in a worker thread, a new session's config reused (8 -> 0.2 ms), "
    "gradio's pandas summary of its last 10,000 events at every event's end left off: the app's first text at "
    "50 conversations about 1,070 -> 900 ms, its CPU per chunk about halved; against a Space direct answering "
    "in 300 to 380 ms, 2.45x and 2.46x with the issue's command (target 2x: missed). The shared frame is off by "
    "default.",
    "- Stop 38: the sweep now also runs each turn as the Space's own page does (row 'Space's page': user step, bot "
    "step, step after, as the bridge does; 'Space direct' calls the bot step alone), and times the bridge's user "
    "step apart. At 50 conversations the user step takes about 175 ms of the bridge's 350 to 370 to first text, "
    "and the app's first text is 0.90x to 1.06x the page's (1.67x to 2.36x the bot step's alone) in the issue's "
    "sweep.",
]


PARTS = ("turns", "queue_hop", "stream_and_budget", "bridge_upload", "bridge_reply_step", "bridge_first_text",
         "first_text", "usage_write")


def meaning(r: dict[str, Any], get: Callable[..., Any]) -> list[str]:
    out = []
    ref = get(r, "first_text", "reference", "p50")
    for p, label in (("bridge", "The bridge"), ("app", "The app"), ("known_client", "The known client")):
        ft = get(r, "first_text", p)
        if ft and ref is not None and ft["p50"] is not None:
            out.append(f"- {label} shows first text {ft['minus_reference_p50']:+.1f} ms from the reference at p50 "
                       f"({ft['ratio_p50']}× the reference's {ref:.1f} ms).")
    known = get(r, "chunk_latency", "known_client", "p50")
    if known is not None:
        out.append(f"- The known client shows nothing until the reply is complete: a chunk waits {known:.0f} ms "
                   "(p50) before anyone can read it, which is the price of not streaming.")
    up = get(r, "uploads", "known_client", "turns", 1, "upload_bytes")
    if up:
        out.append(f"- The known client sends the image again on the next turn ({up:,} bytes); the bridge "
                   f"sent {get(r, 'uploads', 'bridge', 'turns', 1, 'upload_bytes')} bytes.")
    app_cpu = get(r, "cpu_per_1000_chunks", "app_process", "cpu_s_per_1000_chunks")
    bridge_cpu = get(r, "cpu_per_1000_chunks", "bridge_in_benchmark_process", "cpu_s_per_1000_chunks")
    space_cpu = get(r, "cpu_per_1000_chunks", "standin_all_paths", "cpu_s_per_1000_chunks")
    if app_cpu and bridge_cpu:
        out.append(f"- The app spends {app_cpu:.2f} ms of CPU per chunk relayed; the bridge and its caller "
                   f"{bridge_cpu:.2f} ms. The rest is the app's own gradio server (queue, output diff, SSE "
                   "encoding per yield), which costs about what the Space's gradio server costs to produce the chunk"
                   + (f" ({space_cpu:.2f} ms)." if space_cpu else "."))
        total = get(r, "total", "bridge", "p50")
        chunks = (get(r, "meta", "standin") or {}).get("chunks")
        if total and chunks and space_cpu:
            rate = chunks / (total / 1000)
            cores = get(r, "meta", "machine", "nproc") or 1
            fit = cores * 1000 / ((app_cpu + space_cpu) * rate)
            out.append(f"- Each conversation streams about {rate:.0f} chunks/s at this pace, so Space plus app "
                       f"use {(app_cpu + space_cpu) * rate / 1000:.2f} CPU cores per conversation: {cores} cores "
                       f"saturate at about {fit:.1f} conversations at once. Above that, every row measures CPU "
                       "contention (real models stream far fewer chunks per second).")
    app_conc = (get(r, "meta", "app") or {}).get("concurrency")
    if app_conc == "app default":
        from mirror.settings import AppSettings

        slots, queue = AppSettings.concurrency_total, AppSettings.queue_max_size
        out.append(f"- The app ran with its default turn slots (`--concurrency {slots}`, queue of {queue}): beyond "
                   f"{slots} conversations, first text includes waiting for a slot, and beyond {slots + queue} the "
                   "app refuses turns ('Queue is full').")
    for lv in get(r, "concurrency", "levels") or []:
        if "app" in lv and lv["app"]["errors"]:
            out.append(f"- At {lv['conversations']} conversations the app failed {lv['app']['errors']} of "
                       f"{lv['app']['turns']} turns: {lv['app']['error_samples']}.")
    out.append("- Both servers and the benchmark client share one small machine, so at high concurrency every "
               "row is partly CPU contention; compare the app against 'Space direct' at the same level, not "
               "against the single-turn figures.")
    return out


PROFILE_NOTES = [
    "What profiling found and what was done (py-spy on the app at 10 conversations; cProfile on the bridge):",
    "",
    "- In the app, gradio's own queue, routing and per-yield diffing take about 80% of the CPU; the bridge 5%, the "
    "app's handlers 5%. Gradio switched matplotlib's backend around every streamed step (10%): fixed by setting "
    "`MPLBACKEND=agg` in the app and the stand-in.",
    "- When the app falls behind, each text delta cost a gradio yield: the bridge now reads the stream in batches "
    "and merges adjacent deltas, which cut the added per-chunk latency at 10 and 50 conversations by 3-4x (p50).",
    "- With 8 turn slots and a queue of 64 the app refused turns beyond 72 conversations; 32 slots and a queue of "
    "1,024 give no errors at 100.",
    "- Idle pooled connections are dropped after 4 s, before uvicorn's 5 s keep-alive closes them under a POST "
    "(seen as `ServerDisconnectedError` in one sweep).",
    "- In the bridge, `gradio_client.utils.apply_diff` deep-copies the value it is given, the whole history, for "
    "every chunk (75% of the bridge's CPU with 20 earlier turns; 0.27 ms a chunk with 80 messages). Each operation "
    "is now handed only the message it edits, still through `apply_diff` (0.006 ms a chunk with 80 messages).",
    "- The bridge once sent the Space's user step (fn 10) after the first text (26.1 -> 14.3 ms first text in an A/B "
    "on the stand-in). That order loses the files of a Space whose bot step reads what its user step prepared, so "
    "the bridge now does what the Space's page does: the user step first, then the bot step (row 3 pays that "
    "round trip again; `benchmarks/REPORT-fidelity.md` compares it with a plain client doing the page's sequence).",
    "- Still missed: first text against the gradio_client reference swings by tens of ms between identical runs "
    "(that client adds ~100 ms of its own); with a browser-like client the app adds about 20 ms, its own gradio "
    "queue hop (join, then the event stream). Per-chunk p99 at 50 conversations measures a saturated CPU: at this "
    "pace (about 148 chunks/s a conversation) the stand-in and the app fill both cores at about 3.5 "
    "conversations; a real model streams far fewer chunks a second.",
]


def history(r: dict[str, Any], table: Callable[..., str], get: Callable[..., Any], folder: Path) -> list[str]:
    """Earlier runs kept in ``benchmarks/history/`` beside this one, so a change's effect stays on record.

    ``history/notes.json`` says what each kept run measured (which code); each row is one full run.
    """
    notes = json.loads((folder / "notes.json").read_text()) if (folder / "notes.json").exists() else {}
    runs = [(name, json.loads((folder / name).read_text())) for name in notes if (folder / name).exists()]
    if not runs:
        return []

    def level(res: dict[str, Any], n: int, *keys: str) -> Any:
        lv = next((x for x in get(res, "concurrency", "levels") or [] if x["conversations"] == n), None)
        return get(lv, *keys)

    def row(label: str, res: dict[str, Any]) -> list[Any]:
        return [label, get(res, "first_text", "app", "minus_reference_p50"),
                get(res, "cpu_per_1000_chunks", "app_process", "cpu_s_per_1000_chunks"),
                level(res, 1, "app", "first_text_ms", "p50"), level(res, 50, "app", "first_text_ms", "p50"),
                level(res, 50, "app_added_chunk_latency_p50_ms"), level(res, 50, "app_added_chunk_latency_p99_ms"),
                level(res, 100, "app", "errors")]

    started = get(r, "meta", "started")
    rows = [row(f"{notes[name]} ({get(res, 'meta', 'started')})", res) for name, res in runs
            if get(res, "meta", "started") != started]
    rows.append(row(f"this run ({started})", r))
    return ["## Before and after", "",
            "Full runs of the same command, kept in `benchmarks/history/` (each on this 2-core machine, so compare "
            "the ratios and large differences, not small ones).", "",
            table(["code measured", "app first text − ref p50 (ms)", "app CPU s / 1k chunks",
                   "app first p50 at 1 (ms)", "app first p50 at 50 (ms)", "app added chunk p50 at 50 (ms)",
                   "app added chunk p99 at 50 (ms)",
                   "app errors at 100"], rows), "", *PROFILE_NOTES, ""]

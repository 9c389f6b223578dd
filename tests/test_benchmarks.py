"""Smoke test of ``python -m benchmarks --quick``: it runs end to end and writes every figure.

Never asserts a speed (the machine running CI is not the one the figures are about): only that each key is
present, counts add up, and values are sane (non-negative, ordered percentiles, no failed turns at low load).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from forkserver import run_command

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("first_text", "total", "chunk_latency", "errors", "cpu_per_1000_chunks", "uploads", "token_fetches",
           "concurrency", "long_chat", "targets", "meta")


@pytest.mark.timeout(300)
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    # 20 chunks 2 ms apart (the benchmark's are 60, 5 ms apart): every phase runs, in 37 s instead of 60 here;
    # forked by the session's fork server, like the stand-in and the apps it starts (tests/forkserver.py)
    proc = run_command([sys.executable, "-m", "benchmarks", "--quick", "--turns", "3", "--sweep", "1,3",
                        "--sweep-turns", "2", "--token-conversations", "2", "--pace-ms", "2", "--chunks", "20",
                        "--out", str(tmp_path)],
                       cwd=ROOT, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(FIGURES) <= set(results)
    assert (tmp_path / "REPORT.md").read_text().startswith("# Benchmarks")
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    paths = set(results["first_text"])
    assert {"reference", "known_client", "bridge"} <= paths
    for path in paths:
        assert results["errors"][path] == {"turns": 3, "errors": 0, "samples": []}
        for key in ("first_text", "total", "chunk_latency"):
            fig = results[key][path]
            assert fig["n"] > 0 and 0 <= fig["p50"] <= fig["p99"] <= fig["max"], (key, path, fig)
        assert results["first_text"][path]["p50"] <= results["total"][path]["p50"] + 1e-6
    assert results["first_text"]["reference"]["ratio_p50"] == 1.0
    # every stamped chunk matched (20 chunks a reply), the app's too: its turns share one remote session
    assert results["chunk_latency"]["bridge"]["n"] == results["chunk_latency"]["app"]["n"] == 3 * 20

    uploads = results["uploads"]
    assert uploads["image_bytes"] > 4_000_000
    for path in ("bridge", "known_client"):
        first, second = uploads[path]["turns"]
        assert first["ok"] and second["ok"] and first["upload_bytes"] >= uploads["image_bytes"]
    assert uploads["known_client"]["turns"][1]["upload_bytes"] >= uploads["image_bytes"]  # it re-uploads

    tokens = results["token_fetches"]
    assert tokens["known_client"]["fetches"] == 2 and tokens["bridge"]["fetches"] >= 1
    assert [lv["conversations"] for lv in results["concurrency"]["levels"]] == [1, 3]
    for level in results["concurrency"]["levels"]:
        for target in ("space", "page"):  # the bot step alone, and the whole turn as the Space's page runs it
            assert level[target]["errors"] == 0, level[target]
            assert level[target]["turns"] == level["conversations"] * level["turns_per_conversation"]
        for target in ("space", "page", "app"):  # the server's CPU is per chunk of every turn, not of the last
            assert level[target]["chunks"] == level[target]["turns"] * 20, (target, level[target]["chunks"])
        app_first = level["app"]["first_text_ms"]["p50"]
        assert level["app_first_text_p50_over"] == {
            t: round(app_first / level[t]["first_text_ms"]["p50"], 2) for t in ("space", "page")}, level
    for level in results["concurrency"]["levels"]:  # the app's own clock on the parts of each turn
        parts = level["app"]["parts_ms_p50"]
        assert parts["turns"] == level["app"]["turns"], parts
        assert 0 <= parts["stream_and_budget"] and 0 <= parts["queue_hop"] and 0 <= parts["usage_write"], parts
        assert 0 < parts["bridge_first_text"] <= parts["first_text"] + 1, parts
        assert 0 <= parts["bridge_upload"] <= parts["bridge_reply_step"] <= parts["bridge_first_text"], parts

    long_chat = results["long_chat"]["apps"]  # this code, and the same code with an update per chunk
    assert set(long_chat) == {"app", "every_chunk"}
    for app in long_chat.values():
        assert set(app) == {"0", "200"}
        for row in app.values():
            assert row["errors"] == 0 and row["turns"] == 2 and row["updates_per_turn"] > 0, row
            assert row["earlier_messages"] == [row["earlier_messages"][0], row["earlier_messages"][0] + 2], row
        assert app["0"]["app_cpu_ms_per_turn_vs_none"] == 1.0
    # at 20 chunks a reply, one update per chunk is more updates than 20 a second
    assert long_chat["app"]["0"]["updates_per_turn"] < long_chat["every_chunk"]["0"]["updates_per_turn"]
    assert "## Long chats" in (tmp_path / "REPORT.md").read_text()
    assert {t["verdict"] for t in results["targets"]} <= {"met", "missed", "not measured"}

"""Write ``results.json``, ``REPORT.md`` and ``latency.png`` from one run's results.

Why targets are judged here: the figures and the verdicts must come from the same numbers, so the Markdown
never says "met" for a figure that results.json does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .report_text import TARGET_NAMES

PATH_NAMES = {"reference": "1. gradio_client -> Space (reference)", "known_client": "2. known client's sequence",
              "bridge": "3. phi4_bridge in-process", "app": "4. gradio_client -> app -> bridge -> Space"}


def _get(d: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(d, dict | list):
            return None
        try:
            d = d[key]
        except (KeyError, IndexError, TypeError):
            return None
    return d


def _level(results: dict[str, Any], n: int) -> dict[str, Any] | None:
    return next((lv for lv in _get(results, "concurrency", "levels") or [] if lv["conversations"] == n), None)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure it is judged on and met / missed / not measured."""
    out = []

    def add(name: str, figure: Any, met: bool | None, how: str) -> None:
        out.append({"target": name, "figure": figure,
                    "verdict": "not measured" if met is None else ("met" if met else "missed"), "how": how})

    app_ft = _get(results, "first_text", "app", "minus_reference_p50")
    add("app first text within 10 ms (p50) of the reference", app_ft,
        None if app_ft is None else app_ft <= 10, "p50(app first text) - p50(reference first text), ms")
    lv1 = _level(results, 1)
    a1, s1 = _get(lv1, "app", "first_text_ms", "p50"), _get(lv1, "space", "first_text_ms", "p50")
    gap = None if a1 is None or s1 is None else round(a1 - s1, 2)
    add("(same, browser-like client) app first text within 10 ms (p50) of the Space direct", gap,
        None if gap is None else gap <= 10, "sweep at 1 conversation: p50(app) - p50(Space direct), aiohttp client, ms")
    lv50 = _level(results, 50)
    added = _get(lv50, "app_added_chunk_latency_p99_ms")
    add("per-chunk latency added by the app < 20 ms p99 at 50 conversations", added,
        None if added is None else added < 20,
        "p99(app chunk latency) - p99(Space-direct chunk latency), both at 50 conversations, ms")
    for ref, name in (("space", "app first text p50 at 50 conversations within 2x of the Space direct"),
                      ("page", "(same, against the Space's page: its user step too, as the app's bridge runs it)")):
        over = _get(lv50, "app_first_text_p50_over", ref)
        add(name, over, None if over is None else over <= 2,
            f"sweep at 50 conversations: p50(app first text) / p50({TARGET_NAMES[ref]} first text)")
    lv100 = _level(results, 100)
    errs = _get(lv100, "app", "errors")
    add("no errors at 100 conversations (app)", errs, None if errs is None else errs == 0, "failed turns at 100")
    lc = _get(results, "long_chat", "apps", "app", "200", "app_cpu_ms_per_turn_vs_none")
    add("app CPU per turn at 200 earlier messages within 2x of a first turn", lc, None if lc is None else lc <= 2,
        "long chats: app CPU per turn at ~200 earlier messages / at none (the same visitor chatting on)")
    rows = [_get(results, "token_fetches", p) for p in ("bridge", "app")]
    rows = [r for r in rows if r and r.get("fetches") is not None]
    worst = max((r["fetches"] for r in rows), default=None)
    turns = min((r["turns"] for r in rows), default=0)
    add("at most 1 token fetch per 100 turns (bridge, app)", None if worst is None else f"{worst} in {turns} turns",
        None if worst is None else worst <= max(1, -(-turns // 100)),
        "token fetches over the token phase's turns (at most one per started 100 turns), worst of bridge and app")
    re_up = [_get(results, "uploads", p, "turns", 1, "upload_bytes") for p in ("bridge", "app")]
    re_up = [b for b in re_up if b is not None]
    worst_up = max(re_up) if re_up else None
    add("no re-upload of a file already sent (bridge, app)", worst_up,
        None if worst_up is None else worst_up == 0, "bytes the Space received on the turn re-using the image")
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """Latency against concurrency: first text and per-chunk latency (p50, p99), Space direct vs app."""
    levels = _get(results, "concurrency", "levels") or []
    if not levels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = [lv["conversations"] for lv in levels]
    for ax, key, title in ((axes[0], "first_text_ms", "time to first text"),
                           (axes[1], "chunk_latency_ms", "per-chunk latency (receipt - Space stamp)")):
        for target, colour in (("space", "tab:blue"), ("page", "tab:green"), ("app", "tab:red")):
            for q, style in (("p50", "-o"), ("p99", "--s")):
                ys = [_get(lv, target, key, q) for lv in levels]
                if any(y is not None for y in ys):
                    ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, color=colour,
                            label=f"{TARGET_NAMES[target]} {q}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("conversations at once")
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CHECKS = Path(__file__).with_name("history") / "checks.md"  # checks between full runs, written by hand


def markdown(results: dict[str, Any], chart_name: str | None) -> str:
    """The report; the hand-written checks (``history/checks.md``) last, so that a new run keeps them."""
    from .report_text import render

    text = render(results, targets(results), chart_name, _table, PATH_NAMES, _get)
    if CHECKS.exists():
        text = text.rstrip("\n") + "\n\n" + CHECKS.read_text().strip("\n") + "\n"
    return text


def write_all(results: dict[str, Any], out: Path) -> list[Path]:
    results["targets"] = targets(results)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    png = chart(results, out / "latency.png")
    md_path = out / "REPORT.md"
    md_path.write_text(markdown(results, png.name if png else None))
    return [p for p in (json_path, md_path, png) if p is not None]


if __name__ == "__main__":  # re-render REPORT.md and the chart from a results.json: python -m benchmarks.report F
    import sys

    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    for written in write_all(json.loads(source.read_text()), source.parent):
        print(f"wrote {written}")

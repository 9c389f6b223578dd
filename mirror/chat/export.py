"""The conversation as a download: JSON (the chatbot value, file paths replaced by names) and Markdown."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from phi4_bridge.errors import InputRejected
from phi4_bridge.messages import check_history

from ..door.cleanup import WorkDir

SIZE_REASONS = ("history_too_long", "too_many_files", "bad_history")


def export_refusal(history: Any, limits: Any) -> str | None:
    """Why this chat is not exported: past the history limits (messages, characters, files), the same bounds as
    a turn's history; None otherwise. Characters a turn would refuse are no reason not to export."""
    try:
        check_history(list(history or []) if not isinstance(history, str) else history, limits)
    except InputRejected as exc:
        if exc.reason in SIZE_REASONS:
            return f"Not exported: {exc}"
    return None


def _file_name(part: Mapping[str, Any]) -> str:
    f = part.get("file") or {}
    return str(f.get("orig_name") or os.path.basename(str(f.get("path") or "file")))


def portable(history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with text and file names only (no server paths), queue notes left out."""
    out: list[dict[str, Any]] = []
    for msg in history or []:
        meta = msg.get("metadata") or {}
        if meta.get("status") == "pending":
            continue
        content: list[dict[str, Any]] = []
        items = msg.get("content")
        for part in items if isinstance(items, list) else [items]:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            elif isinstance(part, Mapping) and part.get("type") == "text":
                content.append({"type": "text", "text": str(part.get("text", ""))})
            elif isinstance(part, Mapping) and part.get("type") == "file":
                f = part.get("file") or {}
                content.append({"type": "file", "name": _file_name(part), "mime_type": f.get("mime_type")})
        entry: dict[str, Any] = {"role": msg.get("role"), "content": content}
        if meta.get("title"):
            entry["note"] = meta["title"]
        out.append(entry)
    return out


def to_markdown(history: Iterable[Mapping[str, Any]]) -> str:
    lines = ["# Conversation with Phi-4-multimodal", ""]
    for msg in portable(history):
        who = "**You**" if msg["role"] == "user" else "**Phi-4**"
        if msg.get("note"):
            who += f" _({msg['note']})_"
        lines.append(who + ":")
        lines.append("")
        for part in msg["content"]:
            if part["type"] == "file":
                lines += [f"> 📎 {part['name']}", ""]
            else:
                lines.append(part["text"])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_exports(history: Iterable[Mapping[str, Any]], work: WorkDir | None = None) -> tuple[str, str]:
    """Write ``conversation-<time>.json`` and ``.md`` into a fresh folder (``work``'s ``exports``: the app's own
    folder, cleaned on a schedule and removed at exit; without one, a temporary folder); return both paths."""
    history = list(history or [])
    folder = work.new_folder("exports") if work else Path(tempfile.mkdtemp(prefix="phi4-mirror-export-"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = folder / f"conversation-{stamp}.json"
    md_path = folder / f"conversation-{stamp}.md"
    json_path.write_text(json.dumps(portable(history), ensure_ascii=False, indent=2), encoding="utf-8")
    md_path.write_text(to_markdown(history), encoding="utf-8")
    return str(json_path), str(md_path)

"""A single self-contained HTML page for a QA run: summary, then one row per case with its thumbnail.

Everything is inline: CSS in a <style> block, thumbnails as ``data:`` URIs made with Pillow, no script, no
external ``src``/``href``. Every piece of text (prompts, replies, errors, paths, notes) goes through
``html.escape``, so a reply that contains markup shows as text.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from .runner import summarise

THUMB_PX = 160
_MAX_THUMB_SOURCE_BYTES = 50 * 1024 * 1024

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:20px;margin:0 0 4px}.meta{color:#666;margin:0 0 14px}
.summary span{display:inline-block;margin:0 8px 8px 0;padding:4px 10px;border-radius:12px;background:#f1f1f4}
table{border-collapse:collapse;width:100%}th,td{border-top:1px solid #e3e3e8;padding:8px;vertical-align:top;
text-align:left}th{background:#fafafa;position:sticky;top:0}td.reply,td.prompt{white-space:pre-wrap;
word-break:break-word;max-width:420px}td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
img.thumb{max-width:160px;max-height:160px;border:1px solid #ddd;border-radius:4px;display:block;margin-bottom:4px}
.st{font-weight:600;padding:2px 8px;border-radius:10px;white-space:nowrap}.pass{background:#dff5e3;color:#17692c}
.fail{background:#fde2e1;color:#9b1c1c}.error{background:#fff0d6;color:#8a4b00}.not_run{background:#eee;color:#555}
.err{color:#9b1c1c;white-space:pre-wrap;margin-top:4px}.file{color:#666;font-size:12px;word-break:break-all}
.noimg{width:96px;height:64px;border:1px dashed #ccc;color:#999;font-size:11px;display:flex;align-items:center;
justify-content:center;text-align:center}.good{color:#17692c}.bad{color:#9b1c1c}
td.changed{background:#fffbe6}.queued,.running{background:#e8f0fe;color:#1a4fb4}
""".strip()

STATUS_WORDS = {"pass": "pass", "fail": "fail", "error": "error", "not_run": "not run", "queued": "queued",
                "running": "running…"}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@lru_cache(maxsize=512)
def _thumb_cached(path: str, size: int, mtime_ns: int, px: int) -> str | None:
    if size > _MAX_THUMB_SOURCE_BYTES:
        return None
    return _thumb(path, px)


def thumbnail_of_bytes(data: bytes, px: int = THUMB_PX) -> str | None:
    """A JPEG thumbnail of image bytes (the QA store keeps files as bytes, never as paths), or None. Not cached
    here: a cache keyed by the bytes would keep every image in memory; callers cache by content hash."""
    if len(data) > _MAX_THUMB_SOURCE_BYTES:
        return None
    return _thumb(io.BytesIO(data), px)


def _thumb(source: Any, px: int) -> str | None:
    from PIL import Image

    try:
        with Image.open(source) as img:
            if img.width * img.height > 60_000_000:
                return None
            img.seek(0)
            img.thumbnail((px, px))
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, "white")
                flat.paste(rgba, mask=rgba.getchannel("A"))
                img_rgb = flat
            else:
                img_rgb = img.convert("RGB")
            buf = io.BytesIO()
            img_rgb.save(buf, "JPEG", quality=82)
    except Exception:  # any unreadable or broken image simply has no preview
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_data_uri(path: str, px: int = THUMB_PX) -> str | None:
    """A JPEG thumbnail of the image at ``path`` as a data URI, or None when it cannot be read (or no path is
    given: the app passes ``""`` for a file the visitor did not upload)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _thumb_cached(path, st.st_size, st.st_mtime_ns, px)


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def media_cell(record: Mapping[str, Any], image_paths: Sequence[str] = (),
               thumbs: Sequence[str | None] | None = None) -> str:
    """Thumbnails of a record's images (``image_paths`` are the openable paths, in the record's order; ``thumbs``,
    when given, are ready data URIs instead: the store's exports draw from bytes, never from a path)."""
    shown = _files(record.get("image"))
    parts = []
    for index, name in enumerate(shown):
        if thumbs is not None:
            uri = thumbs[index] if index < len(thumbs) else None
        else:
            uri = thumbnail_data_uri(image_paths[index]) if index < len(image_paths) else None
        if uri:
            parts.append(f'<img class="thumb" alt="{esc(name)}" src="{uri}">')
        else:
            parts.append('<div class="noimg">no preview</div>')
        parts.append(f'<div class="file">{esc(name)}</div>')
    for name in _files(record.get("audio")):
        parts.append(f'<div class="file">&#127925; {esc(name)}</div>')
    return "".join(parts) or '<span class="file">text only</span>'


def _secs(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}s"


def _status(record: Mapping[str, Any]) -> str:
    status = str(record.get("status") or "not_run")
    return f'<span class="st {esc(status)}">{esc(STATUS_WORDS.get(status, status))}</span>'


def _mark(record: Mapping[str, Any]) -> str:
    mark, note = record.get("mark"), record.get("note")
    if not mark and not note:
        return ""
    cls = mark if mark in ("good", "bad") else ""
    return f'<div class="{cls}"><b>{esc(mark or "")}</b> {esc(note or "")}</div>'


def rows_html(records: Sequence[Mapping[str, Any]], image_paths: Mapping[str, Sequence[str]],
              show_marks: bool = True, thumbs: Mapping[str, Sequence[str | None]] | None = None) -> str:
    rows = []
    for record in records:
        rid = str(record.get("id"))
        expect = _files(record.get("expect"))
        expect_html = (f'<div class="file">expect: {esc(", ".join(expect))}</div>' if expect else "")
        error = record.get("error")
        rows.append(
            "<tr>"
            f'<td>{esc(rid)}</td>'
            f"<td>{media_cell(record, image_paths.get(rid, ()), None if thumbs is None else thumbs.get(rid, ()))}</td>"
            f'<td class="prompt">{esc(record.get("prompt"))}{expect_html}</td>'
            f'<td class="reply">{esc(record.get("reply"))}'
            + (f'<div class="err">{esc(record.get("error_type"))}: {esc(error)}</div>' if error else "")
            + "</td>"
            f'<td class="num">first text {_secs(record.get("ttft_s"))}<br>total {_secs(record.get("total_s"))}</td>'
            f"<td>{_status(record)}{_mark(record) if show_marks else ''}</td>"
            "</tr>")
    return "\n".join(rows)


def summary_html(records: Iterable[Mapping[str, Any]]) -> str:
    records = list(records)
    counts = summarise(records)
    marks = [r.get("mark") for r in records]
    extra = ""
    if any(marks):
        extra = (f"<span>marked good {sum(m == 'good' for m in marks)}</span>"
                 f"<span>marked bad {sum(m == 'bad' for m in marks)}</span>")
    return ('<div class="summary">'
            f"<span><b>{counts['total']}</b> cases</span><span class=\"pass\">passed {counts['pass']}</span>"
            f"<span class=\"fail\">failed {counts['fail']}</span><span class=\"error\">errors {counts['error']}</span>"
            f"<span class=\"not_run\">not run {counts['not_run']}</span>{extra}</div>")


TABLE_HEAD = ("<table><thead><tr><th>id</th><th>image</th><th>prompt</th><th>reply</th><th>timings</th>"
              "<th>result</th></tr></thead><tbody>")


def render_report(records: Sequence[Mapping[str, Any]], image_paths: Mapping[str, Sequence[str]], *,
                  title: str = "Phi-4 image prompt QA", meta: str = "", note: str = "",
                  thumbs: Mapping[str, Sequence[str | None]] | None = None) -> str:
    """The whole page as a string."""
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    records = list(records)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}{' · ' if meta else ''}written {esc(when)}</p>"
        + (f"<p><b>{esc(note)}</b></p>" if note else "")
        + summary_html(records) + TABLE_HEAD + rows_html(records, image_paths, thumbs=thumbs)
        + "</tbody></table></body></html>\n")


def write_report(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]],
                 image_paths: Mapping[str, Sequence[str]], **kwargs: Any) -> None:
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(render_report(records, image_paths, **kwargs))
    os.replace(tmp, path)

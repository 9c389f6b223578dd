"""HTML of the QA tab's review: a gallery of cards (one a case), and two runs compared.

Rendering only, no gradio: the handlers (``mirror.qa.handlers``) read the store and pass rows in. Every piece of
text goes through ``html.escape``; pictures are drawn from the bytes the store keeps (``thumbnail_of_bytes``),
never from a path, so nothing here can show a file of the machine that a case did not bring.

The gallery's script (``GALLERY_JS``, run by ``gr.HTML(js_on_load=...)``) sends a mark with
``trigger('click', {action: 'mark', run, case, mark, note})``; keys: ``j``/``k`` next/previous card, ``g``/``b``
mark the focused card good/bad (with the note written on it), ``Escape`` leaves a note for its card.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phi4_bridge.qa.report import STATUS_WORDS, thumbnail_of_bytes

AUDIO_PREVIEW_MAX = 2 * 1024 * 1024  # larger recordings are named, not embedded (a page must stay light)

CSS = """
.qa-gal{display:flex;flex-direction:column;gap:10px}.qa-head{color:#555;margin:2px 0 6px}
.qa-card{display:grid;grid-template-columns:170px 1fr 230px;gap:12px;border:1px solid #ddd;border-radius:10px;
padding:10px;background:var(--block-background-fill,#fff)}.qa-card:focus{outline:3px solid #6366f1}
.qa-card img{max-width:160px;max-height:160px;border-radius:4px;border:1px solid #ddd;display:block}
.qa-card audio{width:160px}.qa-file{font-size:12px;color:#666;word-break:break-all}
.qa-prompt{font-weight:600;white-space:pre-wrap}.qa-reply{white-space:pre-wrap;word-break:break-word;margin-top:6px}
.qa-err{color:#9b1c1c;white-space:pre-wrap}.qa-st{font-weight:600;padding:2px 8px;border-radius:10px}
.qa-st.pass{background:#dff5e3;color:#17692c}.qa-st.fail{background:#fde2e1;color:#9b1c1c}
.qa-st.error{background:#fff0d6;color:#8a4b00}.qa-st.not_run,.qa-st.waiting{background:#eee;color:#555}
.qa-mark{margin:6px 0}.qa-mark.good{color:#17692c}.qa-mark.bad{color:#9b1c1c}
.qa-card textarea{width:100%;min-height:48px}.qa-card button{margin:4px 4px 0 0;padding:3px 10px;border-radius:6px;
border:1px solid #bbb;cursor:pointer}.qa-num{font-variant-numeric:tabular-nums;color:#555;font-size:13px}
.qa-cmp td.changed,.qa-cmp td.fixed,.qa-cmp td.broke{background:#fffbe6}.qa-cmp td{vertical-align:top;
border-top:1px solid #e3e3e8;padding:6px;white-space:pre-wrap}.qa-counts span{margin-right:12px}
""".strip()

GALLERY_JS = """
const send = (card, mark) => {
  if (!card) return;
  const note = card.querySelector('textarea.qa-note');
  window.__qaFocus = card.dataset.case;
  trigger('click', {action: 'mark', run: card.dataset.run, case: card.dataset.case, mark: mark,
                    note: note ? note.value : ''});
};
element.addEventListener('click', (e) => {
  const btn = e.target.closest('button[data-mark]');
  if (btn) { e.preventDefault(); send(btn.closest('.qa-card'), btn.dataset.mark); }
});
window.__qaSend = send;
if (!window.__qaKeys) {
  window.__qaKeys = true;
  document.addEventListener('keydown', (e) => {
    const gallery = document.getElementById('qa-gallery');
    if (!gallery || !gallery.offsetParent || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable)) {
      if (e.key === 'Escape' && t.closest('.qa-card')) t.closest('.qa-card').focus();
      return;
    }
    const cards = Array.from(gallery.querySelectorAll('.qa-card'));
    if (!cards.length) return;
    const active = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest('.qa-card') : null;
    let i = cards.indexOf(active);
    if (e.key === 'j' || e.key === 'k') {
      i = e.key === 'j' ? Math.min(i + 1, cards.length - 1) : Math.max(i - 1, 0);
      cards[i].focus(); cards[i].scrollIntoView({block: 'nearest'}); e.preventDefault();
    } else if ((e.key === 'g' || e.key === 'b') && i >= 0) {
      window.__qaSend(cards[i], e.key === 'g' ? 'good' : 'bad'); e.preventDefault();
    }
  });
}
watch('value', () => {
  const id = window.__qaFocus;
  if (!id) return;
  const card = Array.from(element.querySelectorAll('.qa-card')).find((c) => c.dataset.case === id);
  if (card) card.focus();
});
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _secs(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}s"


def status_badge(row: Mapping[str, Any]) -> str:
    status = str(row.get("status") or "waiting")
    words = STATUS_WORDS.get(status, "not finished" if status == "waiting" else status)
    return f'<span class="qa-st {esc(status)}">{esc(words)}</span>'


def mark_line(row: Mapping[str, Any]) -> str:
    mark, note = row.get("mark"), row.get("note")
    if not mark and not note:
        return '<div class="qa-mark">unmarked</div>'
    who = f" by {esc(row.get('mark_who'))}" if row.get("mark_who") else ""
    when = time.strftime(" %H:%M", time.localtime(row["mark_at"])) if row.get("mark_at") else ""
    return (f'<div class="qa-mark {esc(mark or "")}"><b>{esc(mark or "no mark")}</b>{who}{when}'
            f'{": " + esc(note) if note else ""}</div>')


_THUMBS: OrderedDict[str, str | None] = OrderedDict()  # content hash -> data URI (a few KB each)
_THUMBS_MAX = 4096
_THUMBS_LOCK = threading.Lock()


def thumbnail(digest: str, blob: Callable[[str], bytes | None]) -> str | None:
    """The thumbnail of a stored image, drawn once per app process and kept by its content hash (the bytes are
    read only when it is not cached yet)."""
    with _THUMBS_LOCK:
        if digest in _THUMBS:
            _THUMBS.move_to_end(digest)
            return _THUMBS[digest]
    data = blob(digest)
    uri = thumbnail_of_bytes(data) if data else None
    with _THUMBS_LOCK:
        _THUMBS[digest] = uri
        while len(_THUMBS) > _THUMBS_MAX:
            _THUMBS.popitem(last=False)
    return uri


def media_html(files: Sequence[Mapping[str, Any]], blob: Callable[[str], bytes | None]) -> str:
    """Thumbnails and audio players from the store's bytes; a file with no bytes kept is only named."""
    parts = []
    for file in files:
        if file["role"] == "image":
            uri = thumbnail(file["hash"], blob) if file.get("hash") else None
            parts.append(f'<img alt="{esc(file["name"])}" src="{uri}">' if uri
                         else '<div class="qa-file">no preview</div>')
        elif file.get("hash") and (file.get("size") or 0) <= AUDIO_PREVIEW_MAX and (data := blob(file["hash"])):
            mime = mimetypes.guess_type(file["name"])[0] or "audio/wav"
            parts.append(f'<audio controls preload="none" src="data:{esc(mime)};base64,'
                         + base64.b64encode(data).decode("ascii") + '"></audio>')
        parts.append(f'<div class="qa-file">{"🎵 " if file["role"] == "audio" else ""}{esc(file["name"])}</div>')
    return "".join(parts) or '<div class="qa-file">text only</div>'


def card_html(run_id: int, row: Mapping[str, Any], blob: Callable[[str], bytes | None]) -> str:
    expect = row.get("expect") or []
    error = row.get("error") or (row.get("invalid") if not row.get("status") else None)
    return (
        f'<div class="qa-card" tabindex="0" data-run="{run_id}" data-case="{esc(row["id"])}">'
        f"<div>{media_html(row.get('files') or [], blob)}</div>"
        f'<div><div class="qa-file">{esc(row["id"])}</div><div class="qa-prompt">{esc(row.get("prompt"))}</div>'
        + (f'<div class="qa-file">expect: {esc(", ".join(expect))}</div>' if expect else "")
        + f'<div class="qa-reply">{esc(row.get("reply"))}</div>'
        + (f'<div class="qa-err">{esc(row.get("error_type") or "")}: {esc(error)}</div>' if error else "")
        + f'</div><div>{status_badge(row)} <span class="qa-num">first text {_secs(row.get("ttft_s"))} · total '
        f'{_secs(row.get("total_s"))}</span>{mark_line(row)}'
        f'<textarea class="qa-note" placeholder="note" aria-label="note">{esc(row.get("note"))}</textarea>'
        '<button data-mark="good" class="qa-good">👍 Good</button><button data-mark="bad" class="qa-bad">👎 Bad'
        "</button></div></div>")


def gallery_html(run: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]], total: int, page: int,
                 pages: int, filter: str, counts: Mapping[str, int], blob: Callable[[str], bytes | None]) -> str:
    if run is None:
        return f'<div class="qa-gal"><style>{CSS}</style><p>No run picked yet: run some cases, or pick a run.</p></div>'
    head = (f'<div class="qa-head"><b>{esc(run["label"])}</b> · {esc(run.get("space") or "?")} · {esc(run["state"])}'
            f' · {counts.get("total", 0)} cases: {counts.get("pass", 0)} passed, {counts.get("fail", 0)} failed, '
            f'{counts.get("error", 0)} errors, {counts.get("not_run", 0)} not run · showing {esc(filter)}: '
            f"{total} (page {page} of {pages}) · keys: j/k move, g/b mark good/bad, Esc leaves a note</div>")
    cards = "".join(card_html(int(run["id"]), row, blob) for row in rows) or "<p>No case matches this filter.</p>"
    return f'<div class="qa-gal"><style>{CSS}</style>{head}{cards}</div>'


COUNT_WORDS = (("fixed", "fixed"), ("broke", "broke"), ("changed", "changed"), ("same", "same"),
               ("only_a", "only in A"), ("only_b", "only in B"))


def compare_html(label_a: str, label_b: str, counts: Mapping[str, int], rows: Sequence[Mapping[str, Any]],
                 blob: Callable[[str], bytes | None]) -> str:
    """Two runs side by side; cases that are not the same are highlighted, with counts first."""
    shown = "".join(f'<span class="qa-count-{k}">{w}: <b>{counts.get(k, 0)}</b></span>'
                    for k, w in COUNT_WORDS if counts.get(k) or k in ("fixed", "broke", "changed", "same"))

    def cell(row: Mapping[str, Any] | None, kind: str) -> str:
        cls = f' class="{kind}"' if kind != "same" else ""
        if row is None:
            return f"<td{cls}>–</td>"
        err = f'<div class="qa-err">{esc(row.get("error"))}</div>' if row.get("error") else ""
        return (f"<td{cls}>{status_badge(row)} {_secs(row.get('total_s'))}{mark_line(row)}"
                f"<div>{esc(row.get('reply'))}</div>{err}</td>")

    body = []
    for item in rows:
        base = item["b"] or item["a"]
        body.append(f'<tr data-kind="{item["kind"]}"><td>{esc(item["id"])}<div class="qa-file">{esc(item["kind"])}'
                    f"</div></td><td>{media_html(base.get('files') or [], blob)}</td>"
                    f"<td>{esc(base.get('prompt'))}</td>{cell(item['a'], item['kind'])}{cell(item['b'], item['kind'])}"
                    "</tr>")
    return (f'<div class="qa-cmp"><style>{CSS}</style><p class="qa-counts">{shown}</p>'
            f"<table><thead><tr><th>case</th><th>file</th><th>prompt</th><th>A: {esc(label_a)}</th>"
            f"<th>B: {esc(label_b)}</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>")

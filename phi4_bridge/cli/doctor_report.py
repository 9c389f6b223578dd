"""What ``doctor`` found and checked, in words: the chain described plainly, a Space with no chat explained, and
the report rendered one line a finding or check (or as JSON for a bug report).

Why a module of its own: the description of a chain is the one part that depends on how ``chain.py`` models a
Space, and that model is being generalised; ``describe_chain`` is the single place to re-point (a ``Chain`` that
describes itself, and this module only renders it). Rendering reads only the plain dicts, so it does not change with
the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..chain import Chain

KIND_WORDS = {"image": "an image", "audio": "an audio", "video": "a video", "file": "a file", "files": "a file",
              "textbox": "a text", "multimodaltextbox": "a multimodal text", "chatbot": "a chatbot",
              "slider": "a slider", "dropdown": "a dropdown", "checkbox": "a checkbox", "number": "a number"}
MODES = {"interface": "an Interface", "chat_interface": "a ChatInterface", "blocks": "a Blocks app",
         "tabbed_interface": "a TabbedInterface"}


@dataclass
class Finding:
    """One thing found before any turn (the Hub, ``/config``, the chat): ``ok`` False stops the run."""

    name: str
    ok: bool
    detail: str


@dataclass
class CheckResult:
    """One live check: ``ok`` None when it was skipped (``detail`` says why)."""

    name: str
    ok: bool | None
    detail: str = ""
    first_text_s: float | None = None
    total_s: float | None = None
    space_says: str | None = None  # the Space's own words when it refused
    error_type: str | None = None


@dataclass
class Report:
    space: str | None
    space_url: str
    found: list[Finding] = field(default_factory=list)
    chain: dict[str, Any] | None = None
    checks: list[CheckResult] = field(default_factory=list)
    verdict: str = ""
    exit_code: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def describe_chain(chain: Chain) -> dict[str, Any]:
    """The chain in plain terms, JSON-able: the trigger, each step (queue or not, streams or not, inputs and
    outputs by kind), where text, images and audio go, the options with ranges and defaults. The one place that
    knows how ``chain.py`` models a Space: today the chain describes itself."""
    return chain.describe()


def no_chat_sentence(space: str, config: Any) -> str:
    """Why a Space with this ``/config`` has no chat the bridge can drive, naming what it has instead: "… has no
    chat this bridge can drive: found an Interface with an image and a text input, no chatbot"."""
    if not isinstance(config, Mapping) or not isinstance(config.get("dependencies"), list):
        return f"{space} has no chat this bridge can drive: its /config is not a gradio app's configuration."
    kinds = {c.get("id"): str(c.get("type") or "") for c in config.get("components") or [] if isinstance(c, Mapping)}
    inputs: list[str] = []
    for dep in config["dependencies"]:
        for cid in dep.get("inputs") or [] if isinstance(dep, Mapping) else []:
            kind = kinds.get(cid, "")
            if kind in KIND_WORDS and kind not in inputs:
                inputs.append(kind)
    what = MODES.get(str(config.get("mode") or ""), "an app")
    words = [KIND_WORDS[k] for k in inputs]
    listed = " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
    has = f" with {listed} input" if words else " with no inputs"
    if "chatbot" not in kinds.values():
        missing = "no chatbot"
    elif not {"textbox", "multimodaltextbox"} & set(kinds.values()):
        missing = "a chatbot but no text input"
    else:
        missing = "a chatbot, but no text input whose submit writes it"
    return f"{space} has no chat this bridge can drive: found {what}{has}, {missing}."


# --- rendering ---------------------------------------------------------------------------------------------------

def _component(c: Mapping[str, Any]) -> str:
    label = f" {c['label']!r}" if c.get("label") else ""
    return f"{c.get('kind') or '?'} {c.get('id')}{label}"


def _place(places: Any) -> str:
    if not places:
        return "nowhere (the Space takes none)"
    return ", ".join("the text box" if p == "textbox" else _component(p) for p in places)


def _option(o: Mapping[str, Any]) -> str:
    if o.get("choices") is not None:
        span = "one of " + ", ".join(map(str, o["choices"]))
    elif o.get("kind") == "checkbox":
        span = "true or false"
    elif o.get("minimum") is not None and o.get("maximum") is not None:
        span = f"{o['minimum']:g} to {o['maximum']:g}"
    else:
        span = "a value"
    return f"{o['name']} ({span}; default {o.get('default')!r})"


def chain_lines(chain: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The description as (name, words) lines."""
    trigger = chain.get("trigger") or {}
    choice = f" ({chain['choice']})" if chain.get("choice") else ""
    lines = [("chat", f"{trigger.get('event', 'submit')} of {_component(trigger)}{choice}; the reply in "
                      f"{_component(chain.get('chatbot') or {})}")]
    for n, step in enumerate(chain.get("steps") or [], 1):
        how = ["queue" if step.get("queue") else "/run/predict", "streams" if step.get("streams") else "at once"]
        if step.get("zerogpu"):
            how.append("ZeroGPU")
        ins = ", ".join(_component(c) for c in step.get("inputs") or []) or "nothing"
        outs = ", ".join(_component(c) for c in step.get("outputs") or []) or "nothing"
        lines.append((f"step {n}", f"fn {step.get('fn')} ({', '.join(how)}): {ins} -> {outs}"))
    files = chain.get("files") or {}
    lines.append(("text", f"into {_component(chain.get('text_input') or {})}"))
    lines.append(("images", _place(files.get("image"))))
    lines.append(("audio", _place(files.get("audio"))))
    options = chain.get("options") or []
    lines.append(("options", "; ".join(_option(o) for o in options) if options else "none"))
    return lines


NAME_WIDTH = 12  # "second turn" and the like, so lines printed as they come still line up


def line(name: str, words: str) -> str:
    return f"{name.ljust(NAME_WIDTH)}  {words}"


def finding_line(f: Finding) -> str:
    return line(f.name, ("ok    " if f.ok else "FAIL  ") + f.detail)


def check_line(c: CheckResult) -> str:
    if c.ok is None:
        return line(c.name, f"SKIP  {c.detail}")
    times = []
    if c.first_text_s is not None:
        times.append(f"first text {c.first_text_s:.2f} s")
    if c.total_s is not None:
        times.append(f"total {c.total_s:.2f} s")
    body = "; ".join(p for p in (", ".join(times), c.detail) if p)  # a failure's sentence quotes the Space
    return line(c.name, f"{'PASS' if c.ok else 'FAIL'}  {body}")


def render(report: Report) -> list[str]:
    """One line a finding or check, the verdict last (what ``doctor`` prints, as it goes)."""
    lines = [finding_line(f) for f in report.found]
    if report.chain is not None:
        lines += [line(name, words) for name, words in chain_lines(report.chain)]
    lines += [check_line(c) for c in report.checks]
    lines.append(f"verdict: {report.verdict}")
    return lines


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, default=str)

"""The Space's chat as its own page runs it, read from ``/config``: pure, so it is tested without a network.

Why: the Space's code cannot be read, Spaces are written by many people on gradio 4, 5 and 6, and a bot step may
depend on what an earlier step left behind (a ``gr.State`` filled on the server, files written into the history
in its own shape). The only client sure to be right is one that does what the page does, and the page is
gradio's JS client driving ``/config``. So nothing here depends on a component kind or a step's position:

- **the chat** is a dependency triggered by a text input's ``submit`` (``Textbox`` or ``MultimodalTextbox``) or a
  button's ``click`` (several at once with ``gr.on``; a ``ChatInterface`` is one too), that takes a text input
  among its chain's inputs and whose chain writes a chatbot. When several qualify, rules choose, in this order
  (``CHOICE_RULES``, logged): visible before hidden; a chain that streams (a generator step) into its chatbot;
  the text box's own ``submit`` before a button; the first in ``/config``;
- **the chain** is that dependency and every ``.then``/``.success`` follower (``trigger_after``), in the page's
  order, each run by its own ``queue`` flag (``/run/predict`` or the queue), each writing its outputs into the
  page's component values (``null`` for a ``gr.State``: gradio keeps it on the server, per session hash). A
  browser-only ``js`` step never reaches the server and is skipped;
- **the reply** is what the turn adds to the chatbot, from whichever step writes it (``job``);
- **routes and protocol** come from ``/config``: ``api_prefix`` ("" on gradio 4, ``/gradio_api`` on 5 and 6) and
  ``protocol`` (``sse_v1`` to ``sse_v3``, what gradio_client speaks).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ._wire.values import apply_outputs, is_update, step_inputs
from .options import Option, check_given, option_name, options_from, parse_setting

__all__ = ["Chain", "Component", "Option", "Step", "apply_outputs", "chain_problem", "check_options",
           "fallback_chain", "find_chain", "is_update", "option_name", "parse_setting", "step_inputs"]

FALLBACK_USER_FN, FALLBACK_BOT_FN, FALLBACK_TRIGGER = 10, 11, 8
TEXT_KINDS = ("multimodaltextbox", "textbox")  # the multimodal one first: it takes the files too
FILE_KINDS = ("image", "audio")  # what ``media`` lets through; a ``file`` input takes either
PROTOCOLS = ("sse_v1", "sse_v2", "sse_v2.1", "sse_v3")  # gradio_client's; "ws"/"sse" are gradio 3's
CHOICE_RULES = ("visible before hidden", "streams into its chatbot", "the text box's submit before a button",
                "first in /config")
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm", ".aac", ".opus"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})


@dataclass(frozen=True)
class Component:
    id: int
    type: str
    label: str | None = None
    value: Any = None
    props: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def stateful(self) -> bool:
        """A ``gr.State``: its value lives on the server, so a client sends ``null`` for it."""
        return self.type == "state"

    @property
    def visible(self) -> bool:
        return self.props.get("visible", True) is not False

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.type, "label": self.label}


@dataclass(frozen=True)
class Step:
    """One server dependency of the chain."""

    fn: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    queue: bool
    zerogpu: bool = False
    name: str | None = None
    generator: bool = False  # ``/config``'s ``types.generator``: the step streams its outputs


@dataclass(frozen=True)
class Chain:
    """What a turn runs: the steps in the page's order, where the message goes and where the reply appears."""

    steps: tuple[Step, ...]
    trigger_id: int  # the component whose event starts the chain (sent as ``trigger_id``)
    textbox: int  # the text input the message is typed into
    chatbot: int
    components: Mapping[int, Component]
    source: str = "config"  # "fallback" when ``/config`` could not be read
    version: str = ""
    api_prefix: str = ""
    protocol: str = "sse_v3"
    trigger_event: str = "submit"
    choice: str = ""  # how this chain was chosen among the candidates, in words

    @property
    def multimodal(self) -> bool:
        return self.kind(self.textbox) == "multimodaltextbox"

    @property
    def tuples(self) -> bool:
        """A gradio 4/5 ``tuples`` chatbot (``[[user, bot], ...]``) rather than ``messages``."""
        found = self.components.get(self.chatbot)
        return found is not None and found.props.get("type") == "tuples"

    @property
    def diffs(self) -> bool:
        """Whether a streamed output after the first comes as diff operations (sse_v2 and later) or whole."""
        return self.protocol != "sse_v1"

    @cached_property
    def answering(self) -> int:
        """The index of the step a replayed earlier turn stops before (it would spend GPU to answer what is
        already answered): the first ZeroGPU step, else the first generator (a model streams; into the chatbot
        or into a box a later step copies), else the last step writing the chatbot. Only replays use this; a
        live turn runs every step and reads the reply from all."""
        writes = [i for i, s in enumerate(self.steps) if self.chatbot in s.outputs]
        gpu = [i for i, s in enumerate(self.steps) if s.zerogpu]
        streams = [i for i, s in enumerate(self.steps) if s.generator]
        return (gpu or streams or writes[-1:] or [len(self.steps) - 1])[0]

    @property
    def replay_before(self) -> tuple[Step, ...]:
        return self.steps[: self.answering]

    @cached_property
    def replay_after(self) -> tuple[Step, ...]:
        """After the answering step, the steps a replay still runs: those writing what a turn reads (a State a
        later turn's steps take, as a ChatInterface copies the chat into its history State), but not the chatbot:
        the replay has put the earlier reply there itself, and a step that writes it from the answering step's
        output (which did not run) would spoil it."""
        read = {i for s in self.steps for i in s.inputs} - {self.textbox, self.chatbot}
        return tuple(s for s in self.steps[self.answering + 1:]
                     if read & set(s.outputs) and self.chatbot not in s.outputs)

    @cached_property
    def page_only(self) -> frozenset[int]:
        """The steps after the answering one that only touch the page, by index: they write neither the chatbot
        nor anything a step reads (what ``replay_after`` leaves; gradio's demos end with one that makes the textbox
        usable again). A live turn runs them, as the page does, but its reply does not hang on them: it is whole
        before they run."""
        return frozenset(i for i, s in enumerate(self.steps)
                         if i > self.answering and self.chatbot not in s.outputs and s not in self.replay_after)

    @cached_property
    def options(self) -> dict[str, Option]:
        """Every user-settable control among any step's inputs, by label: not the chat's own text input, not a
        component the page shows as not interactive, and not a textbox a step of the chain writes (one a step
        streams the reply into, for the next step to read, is the Space's, not the user's). A slider a step
        only greys out while it runs stays an option."""
        written = {o for s in self.steps for o in s.outputs if self.kind(o) == "textbox"}
        seen: list[int] = []
        for step in self.steps:
            seen += [i for i in step.inputs if i not in seen and i != self.textbox and i not in written]
        comps = [self.components[i] for i in seen if i in self.components]
        return options_from((c.id, c.type, c.label, c.value, c.props) for c in comps
                            if c.props.get("interactive") is not False)

    def initial_values(self) -> dict[int, Any]:
        """Every component's value as ``/config`` gives it, as the page starts with."""
        return {cid: copy.deepcopy(c.value) for cid, c in self.components.items()}

    def kind(self, component: int) -> str:
        found = self.components.get(component)
        return found.type if found is not None else ""

    def textbox_accepts(self, kind: str) -> bool:
        """Whether the multimodal textbox takes a file of ``kind`` (its ``file_types``; none given: any)."""
        if not self.multimodal:
            return False
        types = self.components[self.textbox].props.get("file_types")
        if not types:
            return True
        suffixes = AUDIO_SUFFIXES if kind == "audio" else IMAGE_SUFFIXES
        return any(t in (kind, "file", "*") or str(t).lower() in suffixes or str(t).startswith(f"{kind}/")
                   for t in types)

    def file_inputs(self) -> list[int]:
        """The chain's inputs that take a file, in the page's order (Image, Audio, File)."""
        out: list[int] = []
        for step in self.steps:
            out += [i for i in step.inputs if i not in out and self.kind(i) in (*FILE_KINDS, "file", "files")]
        return out

    def file_places(self, kinds: Sequence[str]) -> list[int]:
        """Where each file (by kind, in order) goes: the multimodal textbox when it takes that kind, else a
        free input of that kind (one file a component), else a File input. ValueError says what is missing."""
        slots = self.file_inputs()
        taken: set[int] = set()  # inputs given a file already (a multiple File takes more, but is never "free")
        out: list[int] = []
        for kind in kinds:
            if self.textbox_accepts(kind):
                out.append(self.textbox)
                continue
            many = [i for i in slots if self.kind(i) == "file" and self.components[i].props.get("file_count")
                    in ("multiple", "directory")]
            free = [i for i in slots if i not in taken and self.kind(i) in (kind, "file")]
            place = free[0] if free else (many[0] if many else None)
            if place is None:
                if any(self.kind(i) == kind for i in slots) or (kind in self.kinds_in_textbox()):
                    raise ValueError(f"This Space takes one {kind} a turn.")
                raise ValueError(f"This Space takes no {kind}.")
            taken.add(place)
            out.append(place)
        return out

    def kinds_in_textbox(self) -> list[str]:
        return [k for k in FILE_KINDS if self.textbox_accepts(k)]

    def describe(self) -> dict[str, Any]:
        """The chain in plain terms (``phi4-bridge doctor`` prints it): JSON-able."""
        def brief(cid: int) -> dict[str, Any]:
            c = self.components.get(cid)
            return c.brief() if c is not None else {"id": cid, "kind": "", "label": None}

        files = {k: [brief(self.textbox)] if self.textbox_accepts(k) else
                 [brief(i) for i in self.file_inputs() if self.kind(i) in (k, "file")] for k in FILE_KINDS}
        return {
            "source": self.source, "gradio_version": self.version, "api_prefix": self.api_prefix,
            "protocol": self.protocol, "choice": self.choice,
            "trigger": {**brief(self.trigger_id), "event": self.trigger_event},
            "text_input": brief(self.textbox),
            "chatbot": {**brief(self.chatbot), "format": "tuples" if self.tuples else "messages"},
            "steps": [{"fn": s.fn, "name": s.name, "queue": s.queue, "streams": s.generator, "zerogpu": s.zerogpu,
                       "writes_chatbot": self.chatbot in s.outputs, "inputs": [brief(i) for i in s.inputs],
                       "outputs": [brief(i) for i in s.outputs]} for s in self.steps],
            "files": files,
            "options": [o.as_dict() for o in self.options.values()],
        }


# --- reading /config ------------------------------------------------------------------------------------------

def _components(config: Mapping[str, Any]) -> dict[int, Component]:
    out: dict[int, Component] = {}
    for item in config.get("components") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
            continue
        raw_props = item.get("props")
        props: Mapping[str, Any] = raw_props if isinstance(raw_props, Mapping) else {}
        label = props.get("label")
        out[item["id"]] = Component(id=item["id"], type=str(item.get("type") or ""),
                                    label=str(label) if isinstance(label, str) else None,
                                    value=props.get("value"), props=props)
    return out


def _ids(value: Any) -> tuple[int, ...]:
    return tuple(v for v in value if isinstance(v, int)) if isinstance(value, list) else ()


def _targets(dep: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [(t[0], t[1]) for t in dep.get("targets") or [] if isinstance(t, list | tuple) and len(t) == 2]


def _step(dep: Mapping[str, Any], index: int) -> Step:
    types = dep.get("types")
    return Step(fn=index, inputs=_ids(dep.get("inputs")), outputs=_ids(dep.get("outputs")),
                queue=dep.get("queue") is not False, zerogpu=dep.get("zerogpu") is True,
                name=str(dep["api_name"]) if isinstance(dep.get("api_name"), str) else None,
                generator=isinstance(types, Mapping) and types.get("generator") is True)


def _dep_id(dep: Mapping[str, Any], index: int) -> int:
    """A dependency's own id (gradio 4+), else its index in the list (gradio 3's fn index)."""
    dep_id = dep.get("id")
    return dep_id if isinstance(dep_id, int) else index


def _runs_on_server(dep: Mapping[str, Any]) -> bool:
    """A dependency with only a browser-side ``js`` function never reaches the server: the page runs it alone."""
    return dep.get("backend_fn", True) is not False


def _chained(start: int, deps: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """``start`` and what runs after it, depth first in id order, as the page starts them."""
    order: list[int] = []

    def visit(dep_id: int) -> None:
        if dep_id in order:
            return
        order.append(dep_id)
        for child, dep in deps.items():
            if dep.get("trigger_after") == dep_id:
                visit(child)

    visit(start)
    return order


@dataclass(frozen=True)
class _Candidate:
    dep: int
    steps: tuple[Step, ...]
    trigger: int
    event: str
    textbox: int
    chatbot: int

    def rank(self, comps: Mapping[int, Component]) -> tuple[int, ...]:
        """Lower is better, rule by rule (``CHOICE_RULES``)."""
        hidden = not all(comps[i].visible for i in (self.trigger, self.textbox, self.chatbot) if i in comps)
        streams = any(s.generator and self.chatbot in s.outputs for s in self.steps)
        return int(hidden), int(not streams), int(self.event != "submit"), self.dep


def _candidate(dep_id: int, deps: Mapping[int, Mapping[str, Any]], comps: Mapping[int, Component]
               ) -> _Candidate | None:
    """The chat a dependency starts, if it is one (see the module docstring)."""
    kind = {cid: c.type for cid, c in comps.items()}
    triggers = [(c, e) for c, e in _targets(deps[dep_id])
                if (kind.get(c) in TEXT_KINDS and e == "submit") or (kind.get(c) == "button" and e == "click")]
    if not triggers:
        return None
    steps = tuple(_step(deps[i], i) for i in _chained(dep_id, deps) if _runs_on_server(deps[i]))
    inputs = [i for s in steps for i in s.inputs]
    written = [o for s in steps for o in s.outputs if kind.get(o) == "chatbot"]
    if not written:
        return None
    streamed = [o for s in steps if s.generator for o in s.outputs if kind.get(o) == "chatbot"]
    chatbot = (streamed or written)[0]
    submits = [c for c, e in triggers if e == "submit" and c in inputs]
    texts = sorted({i for i in inputs if kind.get(i) in TEXT_KINDS},
                   key=lambda i: (not comps[i].visible, TEXT_KINDS.index(kind[i]), inputs.index(i)))
    textbox = submits[0] if submits else (texts[0] if texts else None)
    if textbox is None:
        return None  # a Clear or Retry button: the message has nowhere to go
    trigger, event = (textbox, "submit") if submits else next((c, e) for c, e in triggers if e == "click")
    return _Candidate(dep_id, steps, trigger, event, textbox, chatbot)


def _candidates(config: Mapping[str, Any]) -> tuple[dict[int, Component], list[_Candidate]]:
    comps = _components(config)
    raw = [d for d in config.get("dependencies") or [] if isinstance(d, Mapping)]
    deps = {_dep_id(d, i): d for i, d in enumerate(raw)}
    found = [c for c in (_candidate(i, deps, comps) for i in deps) if c is not None]
    return comps, sorted(found, key=lambda c: c.rank(comps))


def find_chain(config: Mapping[str, Any]) -> Chain | None:
    """The chat chain of a gradio ``/config`` (4.x to 6.x), or None when it has none (``chain_problem`` says
    what was found and what is missing)."""
    comps, found = _candidates(config)
    if not found:
        return None
    best = found[0]
    choice = f"fn {best.dep}, started by {comps[best.trigger].type} {best.trigger}'s {best.event}"
    if len(found) > 1:
        others = ", ".join(f"fn {c.dep}" for c in found[1:])
        choice += f", chosen over {others} by the rules: {'; '.join(CHOICE_RULES)}"
    prefix = config.get("api_prefix")
    protocol = config.get("protocol")
    return Chain(steps=best.steps, trigger_id=best.trigger, textbox=best.textbox, chatbot=best.chatbot,
                 components=comps, version=str(config.get("version") or ""),
                 api_prefix=str(prefix).rstrip("/") if isinstance(prefix, str) else "",
                 protocol=str(protocol) if isinstance(protocol, str) else "sse_v3",
                 trigger_event=best.event, choice=choice)


def chain_problem(config: Any) -> str:
    """Why the bridge cannot drive a Space with this ``/config``, in words: what was found, what is missing
    (empty when it can)."""
    if not isinstance(config, Mapping):
        return "its /config is not a gradio app's configuration"
    version = f"gradio {config.get('version') or '?'}"
    protocol = config.get("protocol")
    if isinstance(protocol, str) and protocol not in PROTOCOLS:
        return (f"it runs {version} with the '{protocol}' queue protocol; the bridge speaks {', '.join(PROTOCOLS)} "
                "(gradio 4 to 6)")
    if find_chain(config) is not None:
        return ""
    comps = _components(config).values()
    have = {k: [c.id for c in comps if c.type == k] for k in ("chatbot", *TEXT_KINDS, "button")}
    found = ", ".join(f"{len(v)} {k}" for k, v in have.items() if v) or "no chat components"
    if not have["chatbot"]:
        missing = "chatbot"
    elif not have["textbox"] and not have["multimodaltextbox"]:
        missing = "text input"
    else:
        missing = "text input's submit or button's click whose chain takes the text and writes the chatbot"
    return f"its /config ({version}) has {found}, but no {missing}"


def fallback_chain() -> Chain:
    """The indices the known client hard-codes (user step 10, bot step 11, textbox 8), for a Space whose
    ``/config`` cannot be read. Component ids other than the textbox are made up (negative)."""
    chatbot, third = -1, -2
    components = {FALLBACK_TRIGGER: Component(FALLBACK_TRIGGER, "multimodaltextbox"),
                  chatbot: Component(chatbot, "chatbot", value=[]), third: Component(third, "state")}
    steps = (Step(FALLBACK_USER_FN, (chatbot, FALLBACK_TRIGGER, third), (chatbot, FALLBACK_TRIGGER), queue=False),
             Step(FALLBACK_BOT_FN, (chatbot,), (chatbot,), queue=True, zerogpu=True, generator=True))
    return Chain(steps=steps, trigger_id=FALLBACK_TRIGGER, textbox=FALLBACK_TRIGGER, chatbot=chatbot,
                 components=components, source="fallback", api_prefix="/gradio_api",
                 choice="the known client's fn 10 and 11")


def check_options(chain: Chain, given: Mapping[str, Any] | None) -> dict[int, Any]:
    """Component values for ``given`` options; ValueError naming the problem and what the Space offers."""
    return check_given(chain.options, given)

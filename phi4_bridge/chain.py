"""The Space's chat as its own page runs it, read from ``/config``: pure, so it is tested without a network.

Why: the Space's code cannot be read, and its bot step may depend on what its user step left behind (a
``gr.State`` filled on the server, files written into the history in its own shape). The only client that is
sure to be right is one that does what the page does, and the page is gradio's JS client driving ``/config``:

- the chat starts with the dependency that the multimodal textbox's ``submit`` triggers (also how a
  ``gr.ChatInterface`` starts), and goes on with every dependency chained after it (``trigger_after``), in order,
  each with the same ``trigger_id``;
- the page keeps one value per component, starting from ``/config``'s ``props.value``; a step's inputs are those
  values (``null`` for a ``gr.State``: gradio keeps State on the server, per session hash, and ignores what a
  client sends); a step's outputs are written back (an update dict changes only what it names);
- a ``queue: false`` step is a POST to ``/run/predict``, a queued one joins the queue and streams;
- a chained step starts when the one before it is complete. The page would still start a ``.then`` step after a
  failed one (gradio 5); the bridge stops there instead, with the Space's own words: the bot step would only
  answer the previous turn again, on the caller's GPU quota.

So a turn here is: set the textbox's value to the message (files as FileData), run the chain's steps in order,
and read the reply from the chatbot value the Space returned. Nothing about the message shape is guessed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

FALLBACK_USER_FN, FALLBACK_BOT_FN, FALLBACK_TRIGGER = 10, 11, 8
# Component kinds whose value a person sets with a control on the page, and so may be a generation option.
OPTION_KINDS = frozenset({"slider", "number", "dropdown", "checkbox", "radio"})
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm", ".aac", ".opus"})


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


@dataclass(frozen=True)
class Step:
    """One dependency of the chain."""

    fn: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    queue: bool
    zerogpu: bool = False
    name: str | None = None


@dataclass(frozen=True)
class Option:
    """A control of the Space's bot step (a slider and the like), usable as ``options={name: value}``."""

    name: str
    component: int
    kind: str
    label: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} (one of {', '.join(map(str, self.choices))}; default {self.default!r})"
        if self.kind == "checkbox":
            return f"{self.name} (true or false; default {self.default!r})"
        span = f"{self.minimum:g} to {self.maximum:g}" if self.minimum is not None and self.maximum is not None \
            else "a number"
        return f"{self.name} ({span}; default {self.default!r})"


@dataclass(frozen=True)
class Chain:
    """What a turn runs: the steps in the page's order, and where the message and the reply live."""

    steps: tuple[Step, ...]
    trigger_id: int
    textbox: int
    chatbot: int
    components: Mapping[int, Component]
    bot: int  # index into ``steps`` of the step whose streamed output is the reply
    source: str = "config"  # "fallback" when ``/config`` could not be read
    version: str = ""

    @property
    def pre_bot(self) -> tuple[Step, ...]:
        return self.steps[: self.bot]

    @property
    def post_bot(self) -> tuple[Step, ...]:
        return self.steps[self.bot + 1:]

    @property
    def bot_step(self) -> Step:
        return self.steps[self.bot]

    @cached_property
    def options(self) -> dict[str, Option]:
        return options_of(self)

    def initial_values(self) -> dict[int, Any]:
        """Every component's value as ``/config`` gives it, as the page starts with."""
        return {cid: copy.deepcopy(c.value) for cid, c in self.components.items()}

    def accepts_audio_in_textbox(self) -> bool:
        box = self.components.get(self.textbox)
        types = box.props.get("file_types") if box is not None else None
        if not types:
            return True  # no restriction given: the textbox takes any file
        return any(t in ("audio", "file", "*") or str(t).lower() in AUDIO_SUFFIXES or str(t).startswith("audio/")
                   for t in types)

    def audio_input(self, step: Step) -> int | None:
        """The step's own audio input (the Space's recording widget), if it has one."""
        return next((i for i in step.inputs if self.kind(i) == "audio"), None)

    def kind(self, component: int) -> str:
        found = self.components.get(component)
        return found.type if found is not None else ""


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
    return [tuple(t) for t in dep.get("targets") or [] if isinstance(t, list | tuple) and len(t) == 2]


def _step(dep: Mapping[str, Any], index: int) -> Step:
    fn = dep.get("id", index)
    return Step(fn=int(fn) if isinstance(fn, int) else index, inputs=_ids(dep.get("inputs")),
                outputs=_ids(dep.get("outputs")), queue=dep.get("queue") is not False,
                zerogpu=dep.get("zerogpu") is True,
                name=str(dep["api_name"]) if isinstance(dep.get("api_name"), str) else None)


def _dep_id(dep: Mapping[str, Any], index: int) -> int:
    """A dependency's own id (gradio 4+), else its index in the list (gradio 3's fn index)."""
    dep_id = dep.get("id")
    return dep_id if isinstance(dep_id, int) else index


def _runs_on_server(dep: Mapping[str, Any]) -> bool:
    """A dependency with only a browser-side ``js`` function never reaches the server: the page runs it alone."""
    return dep.get("backend_fn", True) is not False


def find_chain(config: Mapping[str, Any]) -> Chain | None:
    """The chat chain of a gradio ``/config`` (4.x to 6.x), or None when it has none we can drive."""
    components = _components(config)
    raw = [d for d in config.get("dependencies") or [] if isinstance(d, Mapping)]
    deps: dict[int, Mapping[str, Any]] = {_dep_id(d, i): d for i, d in enumerate(raw)}
    chatbots = {cid for cid, c in components.items() if c.type == "chatbot"}
    boxes = {cid for cid, c in components.items() if c.type == "multimodaltextbox"}
    for dep_id, dep in deps.items():
        box = next((t[0] for t in _targets(dep) if t[0] in boxes and t[1] == "submit"), None)
        if box is None:
            continue
        ordered = _chained(dep_id, deps)
        steps = [_step(deps[i], i) for i in ordered if _runs_on_server(deps[i])]
        # After the bot step, a step matters only when it writes what a turn reads: the chatbot, or a State the
        # next turn's steps take (a ChatInterface copies the chat into its history State that way). Steps that
        # only re-enable the textbox or save a copy for the browser are skipped.
        bot = _bot_index(steps, chatbots)
        if bot is None:
            continue
        chatbot = next(o for o in steps[bot].outputs if o in chatbots)
        read = {chatbot} | {i for s in steps[: bot + 1] for i in s.inputs} - {int(box)}
        steps = [s for i, s in enumerate(steps) if i <= bot or read & set(s.outputs)]
        return Chain(steps=tuple(steps), trigger_id=int(box), textbox=int(box), chatbot=chatbot,
                     components=components, bot=bot, version=str(config.get("version") or ""))
    return None


def _chained(start: int, deps: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """``start`` and what runs after it, depth first in index order, as the page starts them."""
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


def _bot_index(steps: Sequence[Step], chatbots: set[int]) -> int | None:
    """The step that answers: the first queued one writing a chatbot, else the last one writing a chatbot."""
    writes = [i for i, s in enumerate(steps) if chatbots & set(s.outputs)]
    queued = [i for i in writes if steps[i].queue]
    if queued:
        return queued[0]
    return writes[-1] if writes else None


def fallback_chain() -> Chain:
    """The indices the known client hard-codes (user step 10, bot step 11, textbox 8), for a Space whose
    ``/config`` cannot be read. Component ids other than the textbox are made up (negative)."""
    chatbot, third = -1, -2
    components = {FALLBACK_TRIGGER: Component(FALLBACK_TRIGGER, "multimodaltextbox"),
                  chatbot: Component(chatbot, "chatbot", value=[]), third: Component(third, "state")}
    steps = (Step(FALLBACK_USER_FN, (chatbot, FALLBACK_TRIGGER, third), (chatbot, FALLBACK_TRIGGER), queue=False),
             Step(FALLBACK_BOT_FN, (chatbot,), (chatbot,), queue=True, zerogpu=True))
    return Chain(steps=steps, trigger_id=FALLBACK_TRIGGER, textbox=FALLBACK_TRIGGER, chatbot=chatbot,
                 components=components, bot=1, source="fallback")


# --- the page's values ----------------------------------------------------------------------------------------

def step_inputs(chain: Chain, step: Step, values: Mapping[int, Any]) -> list[Any]:
    """A step's data as the page sends it: each input component's value, ``None`` for State."""
    out: list[Any] = []
    for cid in step.inputs:
        component = chain.components.get(cid)
        out.append(None if component is None or component.stateful else values.get(cid))
    return out


def is_update(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("__type__") == "update"


def apply_outputs(chain: Chain, step: Step, values: dict[int, Any], data: Sequence[Any]) -> None:
    """Write a step's outputs into ``values``: a plain value replaces; an update dict changes the value only when
    it names one; State outputs stay on the server (gradio sends ``None`` for them)."""
    for cid, value in zip(step.outputs, data):
        component = chain.components.get(cid)
        if component is not None and component.stateful:
            continue
        if is_update(value):
            if "value" in value:
                values[cid] = value["value"]
        else:
            values[cid] = value


# --- options -------------------------------------------------------------------------------------------------

def option_name(label: str) -> str:
    """``"Max new tokens"`` -> ``max_new_tokens``; ``"Top-p"`` -> ``top_p``."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def options_of(chain: Chain) -> dict[str, Option]:
    """The bot step's controls, by the name of their label."""
    out: dict[str, Option] = {}
    for cid in chain.bot_step.inputs:
        c = chain.components.get(cid)
        if c is None or c.type not in OPTION_KINDS or not c.label:
            continue
        name = option_name(c.label)
        if not name or name in out:
            continue
        choices = c.props.get("choices")
        if isinstance(choices, list):
            choices = tuple(ch[1] if isinstance(ch, list | tuple) and len(ch) == 2 else ch for ch in choices)
        else:
            choices = None
        minimum, maximum, step = c.props.get("minimum"), c.props.get("maximum"), c.props.get("step")
        out[name] = Option(name=name, component=cid, kind=c.type, label=c.label, default=c.value,
                           minimum=_number(minimum), maximum=_number(maximum), step=_number(step),
                           choices=choices)
    return out


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def check_options(chain: Chain, given: Mapping[str, Any] | None) -> dict[int, Any]:
    """Component values for ``given`` options; ValueError naming the problem and what the Space offers."""
    if not given:
        return {}
    offered = chain.options
    listing = "; ".join(o.describe() for o in offered.values()) or "none"
    out: dict[int, Any] = {}
    for name, value in given.items():
        option = offered.get(option_name(str(name)))
        if option is None:
            raise ValueError(f"The Space has no setting {name!r}. It offers: {listing}.")
        out[option.component] = _checked(option, value)
    return out


def _checked(option: Option, value: Any) -> Any:
    if option.choices is not None:
        if value not in option.choices:
            raise ValueError(f"{value!r} is not a choice for {option.describe()}.")
        return value
    if option.kind == "checkbox":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false, for {option.describe()}.")
        return value
    if not _is_number(value) or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a number, for {option.describe()}.")
    if (option.minimum is not None and value < option.minimum) or \
            (option.maximum is not None and value > option.maximum):
        raise ValueError(f"{value!r} is out of range for {option.describe()}.")
    if isinstance(option.default, int) and not isinstance(option.default, bool) and float(value).is_integer():
        return int(value)
    return value


def parse_setting(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from the command line: the value as JSON when it parses (numbers, true/false), else text."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: a setting looks like NAME=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value

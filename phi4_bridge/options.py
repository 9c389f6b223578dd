"""The Space's own controls (sliders, numbers, dropdowns, checkboxes, radios, a system-prompt textbox), named by
their labels so a caller can set them (``--set temperature=0.2``): pure, tested without a network.

Why every step's inputs: which step reads a control is the Space's business (a bot step, a user step that
writes the system prompt into the history, a ``ChatInterface``'s ``additional_inputs``). The page sends each
control's value to whichever step takes it, so an option is any user-settable input of any step of the chain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Component kinds whose value a person sets with a control on the page, and so may be a generation option. A
# ``textbox`` counts too, when it is not the chat's own input (a system prompt, even a hidden one).
OPTION_KINDS = frozenset({"slider", "number", "dropdown", "checkbox", "radio", "textbox"})


@dataclass(frozen=True)
class Option:
    """A control of the Space's chain, usable as ``options={name: value}``."""

    name: str
    component: int
    kind: str
    label: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    multiselect: bool = False

    def describe(self) -> str:
        if self.choices is not None:
            many = "some of" if self.multiselect else "one of"
            return f"{self.name} ({many} {', '.join(map(str, self.choices))}; default {self.default!r})"
        if self.kind == "checkbox":
            return f"{self.name} (true or false; default {self.default!r})"
        if self.kind == "textbox":
            return f"{self.name} (text; default {self.default!r})"
        span = f"{self.minimum:g} to {self.maximum:g}" if self.minimum is not None and self.maximum is not None \
            else "a number"
        return f"{self.name} ({span}; default {self.default!r})"

    def as_dict(self) -> dict[str, Any]:
        """What ``doctor`` and the like print: plain JSON-able fields."""
        out: dict[str, Any] = {"name": self.name, "label": self.label, "kind": self.kind, "component": self.component,
                               "default": self.default}
        if self.minimum is not None or self.maximum is not None:
            out |= {"minimum": self.minimum, "maximum": self.maximum, "step": self.step}
        if self.choices is not None:
            out |= {"choices": list(self.choices), "multiselect": self.multiselect}
        return out


def option_name(label: str) -> str:
    """``"Max new tokens"`` -> ``max_new_tokens``; ``"Top-p"`` -> ``top_p``."""
    return re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def options_from(candidates: Iterable[tuple[int, str, str | None, Any, Mapping[str, Any]]]) -> dict[str, Option]:
    """Options from ``(component id, kind, label, value, props)`` in the page's order; the first of two controls
    with the same name wins (the second cannot be named apart)."""
    out: dict[str, Option] = {}
    for cid, kind, label, value, props in candidates:
        if kind not in OPTION_KINDS or not label:
            continue
        name = option_name(label)
        if not name or name in out:
            continue
        raw = props.get("choices")
        choices = tuple(ch[1] if isinstance(ch, list | tuple) and len(ch) == 2 else ch for ch in raw) \
            if isinstance(raw, list) and kind in ("dropdown", "radio") else None
        out[name] = Option(name=name, component=cid, kind=kind, label=label, default=value,
                           minimum=_number(props.get("minimum")), maximum=_number(props.get("maximum")),
                           step=_number(props.get("step")), choices=choices,
                           multiselect=props.get("multiselect") is True)
    return out


def _number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def check_given(offered: Mapping[str, Option], given: Mapping[str, Any] | None) -> dict[int, Any]:
    """Component values for ``given`` options; ValueError naming the problem and what the Space offers."""
    if not given:
        return {}
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
        picked = value if option.multiselect and isinstance(value, list) else [value]
        if any(v not in option.choices for v in picked):
            raise ValueError(f"{value!r} is not a choice for {option.describe()}.")
        return picked if option.multiselect else value
    if option.kind == "checkbox":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false, for {option.describe()}.")
        return value
    if option.kind == "textbox":
        return value if isinstance(value, str) else json.dumps(value)  # `--set system=42` means the text "42"
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
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: a setting looks like NAME=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value

"""The page's component values: what a step sends (its inputs' values, ``null`` for a State) and how its
outputs are written back (an update dict changes only what it names). Pure, tested without a network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..chain import Chain, Step


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

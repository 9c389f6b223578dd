"""Refresh ``configs/<shape>-g<generation>.json``: the ``/config`` of every test Space on every gradio generation
it exists in, as the servers answer it, for the unit tests of the pure chain code (no server needed there).

    python tests/gradio_spaces/record_configs.py [SHAPE ...]

Each Space is started as the matrix starts it (``tests/gradio_matrix.py``; the gradio 4 and 5 venvs are built
first if missing). The server's own origin (a random port) is written as ``http://127.0.0.1:7860`` and
``app_id`` (random at every start) as 0 (see ``normalized``), so a refresh changes a file only when
gradio's answer does.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

from gradio_matrix import SHAPES, space_server  # noqa: E402

CONFIGS = HERE / "configs"
ORIGIN = "http://127.0.0.1:7860"


def record(shape: str, generation: str) -> Path:
    with tempfile.TemporaryDirectory() as folder, space_server(shape, generation, Path(folder) / "runs") as server:
        with urllib.request.urlopen(server.url + "/config", timeout=30) as answer:  # noqa: S310 - loopback only
            text = answer.read().decode()
        config = normalized(text, server.url)
    out = CONFIGS / f"{shape}-g{generation}.json"
    out.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return out


def normalized(text: str, origin: str) -> dict[str, Any]:
    """A ``/config`` answer as recorded: the server's origin as ``ORIGIN``, ``app_id`` (random per start) 0, a
    function's address (a State's ``delete_callback``) 0x0, a BrowserState's ``secret`` "0", a component's
    ``component_class_id`` "0" (gradio 4 hashes the class's file path into it: it changes with the venv's folder)."""
    config: dict[str, Any] = json.loads(re.sub(r" at 0x[0-9a-f]+>", " at 0x0>", text.replace(origin, ORIGIN)))
    if "app_id" in config:
        config["app_id"] = 0
    for component in config.get("components", []):
        if "component_class_id" in component:
            component["component_class_id"] = "0"
        if "secret" in component.get("props", {}):  # a BrowserState's key, random per start (ChatInterface 5+)
            component["props"]["secret"] = "0"
    return config


def main(shapes: list[str]) -> None:
    CONFIGS.mkdir(exist_ok=True)
    for shape in shapes or list(SHAPES):
        for generation in SHAPES[shape][1]:
            print(record(shape, generation).relative_to(HERE.parents[1]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

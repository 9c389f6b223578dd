"""A Hub with two Phi-4 Spaces, all real servers on loopback: the tests' world.

- ``hub``: a stand-in (official layout) acting as the Hub, whose catalogue says the official Space
  ``microsoft/phi-4-multimodal`` has a RUNTIME_ERROR (its own origin serves, but the Hub says it is broken), and
  ``DUPLICATE`` is RUNNING at the second stand-in's origin.
- ``other``: a second stand-in (``chatinterface`` layout, as other Phi-4 Spaces are built) serving ``DUPLICATE``.

Both share one token secret, as every real Space trusts the Hub's ZeroGPU tokens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from phi4_standin.launcher import control, start_standin
from phi4_standin.process import ServerProcess, free_port

OFFICIAL = "microsoft/phi-4-multimodal"
DUPLICATE = "someone/phi-4-multimodal-copy"
QUOTAS = ("--anon-quota-seconds", "3600", "--quota-seconds", "3600")


@dataclass
class World:
    hub: ServerProcess
    other: ServerProcess

    def set_space(self, **entry: Any) -> list[dict[str, Any]]:
        return control(f"{self.hub.url}/standin/hub", "POST", entry)

    def set_own(self, **entry: Any) -> list[dict[str, Any]]:
        """Change the entry of the ``other`` stand-in's own Space (``DUPLICATE``) in its own catalogue: e.g.
        ``private=True, allow=[token]`` makes its Space routes refuse callers without that Bearer token."""
        return control(f"{self.other.url}/standin/hub", "POST", {"id": DUPLICATE, **entry})

    def reset(self) -> None:
        control(f"{self.hub.url}/standin/hub", "POST", {"reset": True})
        control(f"{self.other.url}/standin/hub", "POST", {"reset": True})


@contextmanager
def hub_world() -> Iterator[World]:
    secret = os.urandom(16).hex()
    port = free_port()
    with start_standin(port=port, pace_ms=5, chunks=6, layout="chatinterface",
                       extra_args=[*QUOTAS, "--token-secret", secret, "--space-id", DUPLICATE]) as other, \
            start_standin(pace_ms=5, chunks=6,
                          extra_args=[*QUOTAS, "--token-secret", secret, "--hub-space", f"{OFFICIAL}=RUNTIME_ERROR",
                                      "--hub-space", f"{DUPLICATE}=RUNNING@{other.url}"]) as hub:
        yield World(hub, other)


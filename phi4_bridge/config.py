"""All settings in one place: command-line flags first, then environment variables, then defaults.

The same ``add_arguments`` serves the bridge's own command line, the app and the benchmarks, so a flag means
the same thing everywhere.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields

DEFAULT_SPACE = "microsoft/phi-4-multimodal"
DEFAULT_SPACE_URL = "https://microsoft-phi-4-multimodal.hf.space"
DEFAULT_HUB_URL = "https://huggingface.co"


@dataclass(frozen=True)
class Limits:
    """What a turn may carry; checked before anything leaves the machine."""

    max_image_bytes: int = 10 * 1024 * 1024
    max_audio_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_files: int = 8
    max_prompt_chars: int = 20_000
    # A caller's history (the app's chat, ``/chat`` with ``history``): bounded like a turn, so a caller cannot
    # make the bridge hold or send more than a long real conversation.
    max_history_messages: int = 400
    max_history_chars: int = 200_000
    max_history_files: int = 32


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_event`` covers the queue wait; ``idle`` is silence allowed between stream events."""

    connect: float = 10.0
    request: float = 60.0
    first_event: float = 300.0
    idle: float = 120.0


@dataclass(frozen=True)
class BridgeConfig:
    space: str = DEFAULT_SPACE
    space_url: str = DEFAULT_SPACE_URL
    hub_url: str = DEFAULT_HUB_URL
    hf_token: str | None = field(default=None, repr=False)
    zerogpu_token: str | None = field(default=None, repr=False)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def from_env(cls, args: argparse.Namespace | None = None, **overrides: object) -> BridgeConfig:
        """Flags win over environment variables, which win over defaults; ``HF_TOKEN`` is read by the
        token module through huggingface_hub, so it is not duplicated here."""
        env = os.environ
        values: dict[str, object] = {
            "space": env.get("PHI4_SPACE", DEFAULT_SPACE),
            "space_url": env.get("PHI4_SPACE_URL", DEFAULT_SPACE_URL),
            "hub_url": env.get("PHI4_HUB_URL", DEFAULT_HUB_URL),
            "zerogpu_token": env.get("PHI4_ZEROGPU_TOKEN") or None,
        }
        timeouts = {f.name: float(env[var]) for f in fields(Timeouts)
                    if env.get(var := f"PHI4_TIMEOUT_{f.name.upper()}")}
        if timeouts:
            values["timeouts"] = Timeouts(**timeouts)
        if args is not None:
            for name in ("space", "space_url", "hub_url"):
                if getattr(args, name, None):
                    values[name] = getattr(args, name)
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]
        return cfg.normalised()

    def normalised(self) -> BridgeConfig:
        from dataclasses import replace

        return replace(self, space_url=self.space_url.rstrip("/"), hub_url=self.hub_url.rstrip("/"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help=f"Hub id of the Space (env PHI4_SPACE, default {DEFAULT_SPACE})")
    parser.add_argument("--space-url", help=f"origin of the Space (env PHI4_SPACE_URL, default {DEFAULT_SPACE_URL})")
    parser.add_argument("--hub-url", help=f"origin of the Hub (env PHI4_HUB_URL, default {DEFAULT_HUB_URL})")

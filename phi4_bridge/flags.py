"""The flags that choose the Space (``--space``, ``--space-url``, ``--hub-url``), defined once for every command
line that drives one: the bridge's commands, ``qa``, ``doctor`` and the app. ``phi4_bridge.config`` takes their
values as plain arguments, so the library itself needs no argparse.
"""

from __future__ import annotations

import argparse

from .config import DEFAULT_HUB_URL, DEFAULT_SPACE, DEFAULT_SPACE_URL, BridgeConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help=f"Hub id of the Space, or 'auto': the first running Phi-4-multimodal Space "
                                        f"the bridge can drive, the official one preferred (env PHI4_SPACE, default "
                                        f"{DEFAULT_SPACE})")
    parser.add_argument("--space-url", help=f"origin of the Space (env PHI4_SPACE_URL, default {DEFAULT_SPACE_URL})")
    parser.add_argument("--hub-url", help=f"origin of the Hub (env PHI4_HUB_URL, default {DEFAULT_HUB_URL})")


def config_from(args: argparse.Namespace, **overrides: object) -> BridgeConfig:
    """The ``BridgeConfig`` of a parsed command line: its flags, then the environment, then the defaults."""
    return BridgeConfig.from_env(space=getattr(args, "space", None), space_url=getattr(args, "space_url", None),
                                 hub_url=getattr(args, "hub_url", None), **overrides)

"""All settings in one place: values given (a command line's flags) first, then environment variables, then
defaults. The library reads the environment here and nowhere else (``HF_TOKEN`` aside, read by huggingface_hub):
the Space (``BridgeConfig.from_env``, ``space_named``), the OpenAI API's keys (``api_keys``) and the QA store's file
(``qa_db_path``); the modules that use them are handed the values.

No argparse here: the library takes plain values. The flags that give them (``--space``, ``--space-url``,
``--hub-url``) are defined once in ``phi4_bridge.flags``, for the bridge's commands and the app alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_SPACE = "microsoft/phi-4-multimodal"
DEFAULT_SPACE_URL = "https://microsoft-phi-4-multimodal.hf.space"
DEFAULT_HUB_URL = "https://huggingface.co"
AUTO = "auto"  # ``--space auto``: the first RUNNING Phi-4-multimodal Space the bridge can drive (spaces.py)
# Phi-4-multimodal Spaces to try, the official one first (it has shown a runtime error on the Hub): a Hub search
# (``phi-4-multimodal``, most liked first) adds others. Env ``PHI4_CANDIDATES`` (comma-separated) replaces it.
CANDIDATE_SPACES = (DEFAULT_SPACE, "mido09/phi-4-multimodal", "ariG23498/phi4-multimodal")
CANDIDATE_SEARCH = "phi-4-multimodal"
API_KEYS_ENV = "PHI4_API_KEYS"  # the OpenAI API's keys, comma-separated (after any --api-key)
QA_DB_ENV = "PHI4_QA_DB"  # the QA store's file, when no --db (--qa-db in the app) names one
APP_NAME = "phi4-mirror"  # the user's data folder's name (platformdirs), where the QA store lives by default
QA_DB_NAME = "qa.sqlite3"


def space_subdomain_url(space: str) -> str:
    """The usual origin of a Space (``owner/name`` -> ``https://owner-name.hf.space``); the Hub's ``/host`` route
    says for sure."""
    import re

    return f"https://{re.sub(r'[^a-z0-9]+', '-', space.lower()).strip('-')}.hf.space"


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
    # False when ``space_url`` is only a guess from ``space`` (no ``--space-url``/``PHI4_SPACE_URL``): the Hub's
    # ``/api/spaces/{id}/host`` then says where the Space lives (``spaces.resolve``).
    space_url_given: bool = True
    candidates: tuple[str, ...] = CANDIDATE_SPACES
    # The origin the Hub gives for the Space when the Hub says the Space is private and the user's HF token can see
    # it (``hub.private_origin``); only requests to this origin carry ``Authorization: Bearer <HF token>``. None
    # (the default, and always for a public Space): the HF token never goes to the Space.
    private_origin: str | None = None

    @property
    def official(self) -> bool:
        return self.space == DEFAULT_SPACE

    @classmethod
    def from_env(cls, *, space: str | None = None, space_url: str | None = None, hub_url: str | None = None,
                 **overrides: object) -> BridgeConfig:
        """``space``, ``space_url``, ``hub_url`` (a command line's flags; None or "": not given) win over
        environment variables, which win over defaults; ``overrides`` set any other field. ``HF_TOKEN`` is read by
        the token module through huggingface_hub, so it is not duplicated here."""
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
        if env.get("PHI4_CANDIDATES"):
            values["candidates"] = tuple(s.strip() for s in env["PHI4_CANDIDATES"].split(",") if s.strip())
        given = bool(env.get("PHI4_SPACE_URL"))
        flags = {"space": space, "space_url": space_url, "hub_url": hub_url}
        values.update({name: value for name, value in flags.items() if value})
        given = given or bool(space_url)
        given = given or "space_url" in overrides
        values.update(overrides)
        if not given:
            space = str(values["space"])
            values["space_url"] = DEFAULT_SPACE_URL if space in (DEFAULT_SPACE, AUTO) else space_subdomain_url(space)
        values["space_url_given"] = given
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]
        return cfg.normalised()

    def normalised(self) -> BridgeConfig:
        from dataclasses import replace

        return replace(self, space_url=self.space_url.rstrip("/"), hub_url=self.hub_url.rstrip("/"),
                       private_origin=self.private_origin.rstrip("/") if self.private_origin else None)


def space_named(space: str | None = None) -> bool:
    """Whether a Space id was named: ``space`` (a command line's ``--space``), else ``PHI4_SPACE``. Without one the
    id in a ``BridgeConfig`` is only the default, which says nothing about a ``--space-url`` given alone."""
    return bool(space or os.environ.get("PHI4_SPACE"))


def api_keys(given: Iterable[str] | None = None) -> tuple[str, ...]:
    """The OpenAI API's keys: ``given`` (``--api-key``, repeatable), then ``PHI4_API_KEYS`` (comma-separated), in
    that order, without repeats."""
    keys = list(given or []) + [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",")]
    return tuple(dict.fromkeys(k for k in keys if k))


def qa_db_path() -> Path:
    """Where the QA store lives unless told (``--db``, the app's ``--qa-db``): ``$PHI4_QA_DB``, else ``qa.sqlite3``
    in the user's data folder (``platformdirs``: e.g. ``~/.local/share/phi4-mirror`` on Linux): QA work belongs to
    the person, not to a checkout or a temp folder."""
    env = os.environ.get(QA_DB_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False)) / QA_DB_NAME


def find_hf_token() -> str | None:
    """The user's own HF token (``HF_TOKEN`` or ``huggingface-cli login``), via huggingface_hub."""
    from huggingface_hub import get_token

    return get_token()

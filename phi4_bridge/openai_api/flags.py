"""The OpenAI API's flags (``--api-key``, ``--fetch-image-urls``, ``--concurrency``, ``--turns-per-client``), defined
once for the two command lines that serve it: ``python -m phi4_bridge serve`` (the API alone) and the app
(``mirror.settings``, where ``/v1`` is mounted on the page's server).

The flags mean the same on both; what differs is said by the caller: their defaults (the same numbers today, 32 and
4; the app's ``--turns-per-client`` also reads ``PHI4_TURNS_PER_CLIENT``, which its settings set with
``parser.set_defaults``, while ``serve`` reads no environment for it) and a clause of help each (whose turns
``--concurrency`` counts, who a client is, what no key means). The keys' environment variable, ``PHI4_API_KEYS``,
is read by ``phi4_bridge.config.api_keys`` on both.
"""

from __future__ import annotations

import argparse

from ..config import API_KEYS_ENV

CONCURRENCY = 32  # turns running at once (serve's default; the app's is AppSettings.concurrency_total, also 32)
TURNS_PER_CLIENT = 4  # turns per client at once (serve's default; the app's is AppSettings.turns_per_client, also 4)


def at_least_one(text: str) -> int:
    """``--concurrency`` and ``--turns-per-client``: 0 would let no turn run and a negative count means nothing, so
    argparse refuses them with its usage line, on both command lines."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_api_arguments(parser: argparse.ArgumentParser, *, concurrency: int = CONCURRENCY,
                      turns_per_client: int = TURNS_PER_CLIENT,
                      keys_note: str = "Without any, anyone who reaches the port may use it",
                      concurrency_of: str = "", clients: str = "key or address", turns_note: str = "") -> None:
    """Add the API's four flags to ``parser``. ``keys_note`` ends ``--api-key``'s help; ``concurrency_of`` follows
    "turns running at once" (e.g. " in the whole app"); ``clients`` says who one client is; ``turns_note`` ends the
    default in ``--turns-per-client``'s help (e.g. "; env PHI4_TURNS_PER_CLIENT"). ``serve`` takes the defaults."""
    parser.add_argument("--api-key", action="append", default=[], metavar="KEY",
                        help=f"a key clients of the OpenAI-compatible API (/v1) must send (repeatable; env "
                             f"{API_KEYS_ENV}, comma-separated). {keys_note}")
    parser.add_argument("--fetch-image-urls", action="store_true",
                        help="let the API fetch http(s) image URLs (public addresses only, at most 10 MB and 10 s "
                             "each)")
    parser.add_argument("--concurrency", type=at_least_one, default=concurrency,
                        help=f"turns running at once{concurrency_of} (default {concurrency})")
    parser.add_argument("--turns-per-client", type=at_least_one, default=turns_per_client,
                        help=f"turns one client ({clients}) may run at once (default {turns_per_client}{turns_note})")

"""Every knob of the app in one place: command-line flags and the environment -> one frozen ``AppSettings``.

The app reads its environment here and nowhere else (``mirror/cluster.py``, a launcher, hands it to its children;
``door.cleanup`` sets ``GRADIO_TEMP_DIR`` for gradio). The bridge's own flags (``--space``, ``--space-url``,
``--hub-url``) come from ``phi4_bridge.flags`` and the OpenAI API's (``--api-key``, ``--fetch-image-urls``,
``--concurrency``, ``--turns-per-client``) from ``phi4_bridge.openai_api.flags``, so they mean the same here as on
the bridge's command line. Concurrency limits live here and nowhere else.

The bottom of the app's layers: this module imports nothing of ``mirror`` (a contract in pyproject.toml), so every
part may read it. The two values it checks for other parts are therefore here too: the turn budget's rule
(``--visitor-turns N/PERIOD``: ``Rule``, ``parse_rule``; ``visitors.budget`` counts by it) and the budget store's URL
(``--budget-store``: ``check_url``, ``redact``; ``visitors.redis_budget`` connects to it).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from phi4_bridge.config import BridgeConfig, api_keys
from phi4_bridge.flags import add_arguments, config_from
from phi4_bridge.openai_api.flags import add_api_arguments

MCP_INSTALL = "pip install 'phi4-mirror[mcp]' (or pip install -r requirements.txt)"

# ---- --visitor-turns N/PERIOD: the turn budget's rule (mirror/visitors/budget.py counts by it) -----------------------

UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0,
         "d": 86400.0, "day": 86400.0}
SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+?)s?\s*")
SHARE_DEFAULT = "30/hour"  # --share without --visitor-turns


@dataclass(frozen=True)
class Rule:
    """``turns`` a visitor may send in any ``period_s`` seconds; ``words`` names the period ("hour", "10 s")."""

    turns: int
    period_s: float
    words: str


def parse_rule(text: str) -> Rule | None:
    """``N/PERIOD``: ``20/hour``, ``5/minute``, ``100/day``, ``2/10s``, ``3/90sec``; ``none`` (or ``0``) for no
    budget. ValueError with a sentence otherwise."""
    value = text.strip().lower()
    if value in ("none", "off", "0", ""):
        return None
    match = SPEC.fullmatch(value)
    unit = match and UNITS.get(match.group(3))
    if not match or unit is None:
        raise ValueError(f"{text!r} is not N/PERIOD, e.g. 20/hour, 5/minute, 100/day or 2/10s")
    turns, count = int(match.group(1)), float(match.group(2) or 1)
    if turns < 1 or count <= 0:
        raise ValueError(f"{text!r}: the turns and the period must be positive")
    seconds = count * unit
    name = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}[unit]
    words = name if count == 1 else f"{count:g} {name}s"
    return Rule(turns, seconds, words)


# ---- --budget-store redis://...: checked here, used by mirror/visitors/redis_budget.py -------------------------------

BUDGET_STORE_SCHEMES = ("redis", "rediss", "unix")


def redact(url: str) -> str:
    """``url`` with its password (and a user name's password part) replaced by ``***``: for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a budget store (a sentence, password redacted), or None."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BUDGET_STORE_SCHEMES:
        return (f"{redact(url)} is not a Redis URL: give redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS, "
                "unix:///path/to/redis.sock)")
    return None


@dataclass(frozen=True)
class AppSettings:
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[tuple[str, str], ...] = ()
    standin: bool = False
    fallback: bool = True
    standin_pace_ms: float = 40.0
    standin_chunks: int = 24
    probe_timeout_s: float = 5.0
    recheck_every_s: float = 60.0
    # A "Space" picker in the page (the Hub's Phi-4-multimodal Spaces with their stages) that switches the app to
    # another of them. Off by default: whoever can open the page could then point the host's token at those Spaces.
    allow_space_switch: bool = False
    # Concurrency: turns running at once in the whole app, and per visitor (browser session / API client).
    # A turn mostly waits on the remote GPU, so many can be in flight; the queue holds the rest rather than
    # turning visitors away (benchmarks: 100 conversations at once, no errors).
    concurrency_total: int = 32
    concurrency_per_visitor: int = 1
    queue_max_size: int = 1024
    # Per client (login name, else address): many session hashes from one client still share this many turns.
    turns_per_client: int = 4
    # A queued turn whose event stream is not open this many seconds after it joined is dropped unsent.
    stream_grace_s: float = 5.0
    # Visitors (and gradio's per-session state) idle this long are forgotten; at most this many are kept.
    visitor_idle_s: float = 3600.0
    max_visitors: int = 2000
    # Gradio's upload cache, the exports and QA downloads: files older than this are deleted, checked this often,
    # and everything at exit. A partial upload (aborted request) left behind is deleted after ``partial_upload_s``.
    cache_max_age_s: float = 6 * 3600.0
    cache_sweep_every_s: float = 600.0
    partial_upload_s: float = 120.0
    # Failed logins: this many within ``login_window_s`` from one address lock it out for ``login_lockout_s``.
    login_failures: int = 5
    login_window_s: float = 60.0
    login_lockout_s: float = 30.0
    # The OpenAI-compatible API (/v1): its keys (never shown: repr=False) and whether it fetches http(s) images.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    fetch_image_urls: bool = False
    # The MCP server (mirror/apis/mcp_tools.py): Phi-4 as tools for agents at /gradio_api/mcp/, with /v1's keys and
    # rules.
    mcp: bool = False
    # The QA store (runs, results, marks): None means $PHI4_QA_DB, else qa.sqlite3 in the user's data folder. A
    # tab run has at most ``qa_max_cases`` cases (the CLI has no limit) and ``qa_turns_at_once`` turns in flight.
    qa_db: str | None = None
    qa_max_cases: int = 200
    qa_turns_at_once: int = 4
    # The QA store's bounds (issue 27: nothing ever cleaned it): a tab run is refused when its new files would take
    # the store's files past ``qa_max_mb``; runs older than ``qa_keep_days`` go (with files no other run uses).
    qa_max_mb: float = 1024.0
    qa_keep_days: float = 90.0
    # Sharing (mirror/visitors/: budget.py, host.py, usage.py; mirror/door/slow_clients.py): turns per visitor over a
    # period (None: no limit), the host's logins (exempt; the only ones who see Usage and may switch Spaces), the
    # usage store's file (None: the user's data folder), and how long a client may take to send a request or leave
    # a reply unread before its connection is dropped.
    visitor_turns: Rule | None = None
    admins: tuple[str, ...] = ()
    usage_db: Path | None = None
    slow_client_s: float = 20.0
    on_space: bool = False  # running as a Hugging Face Space (SYSTEM=spaces and SPACE_ID set)
    # The key the page's saved chat is encrypted with in the browser (gradio's BrowserState); None: one of gradio's
    # own per process. Replicas behind one address share it (env PHI4_BROWSER_SECRET, set by mirror/cluster.py).
    browser_secret: str | None = field(default=None, repr=False)
    # The chat's frame rate while a reply streams (mirror/chat/pacing.py); 0: an update for every chunk of the Space.
    ui_updates_per_s: float = 20.0
    # ... and at most this many for all the replies streaming at once, shared between them (0: no such limit).
    # Off by default: at 50 conversations a shared 200 saved a sixth of the app's CPU but did not bring the first
    # words sooner, and made each word wait up to a frame of 160 ms (benchmarks/REPORT.md, stop 37)
    ui_updates_total_per_s: float = 0.0
    # One SQLite file where every replica of a cluster counts the turn budget (mirror/cluster.py sets
    # PHI4_BUDGET_DB); None: this process counts alone, in memory.
    budget_db: str | None = None
    # A Redis server where replicas on several hosts count the turn budget (mirror/visitors/redis_budget.py): redis://URL,
    # from --budget-store or PHI4_BUDGET_STORE; it wins over budget_db. Not in repr: the URL may hold a password.
    budget_store: str | None = field(default=None, repr=False)
    # One DEBUG line per turn with the parts of its way to the first words (mirror/chat/handlers.py TurnRecord), for
    # the benchmark's table of parts (env PHI4_TURN_PARTS=1).
    turn_parts: bool = False
    # The folder the app makes its own work folder in (env GRADIO_TEMP_DIR, as gradio names it; None: the system's
    # temporary folder). mirror/door/cleanup.py then points GRADIO_TEMP_DIR at that work folder's uploads.
    temp_dir: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        """The most one uploaded file may weigh: the bridge's largest limit (bigger files could never be sent)."""
        limits = self.bridge.limits
        return max(limits.max_image_bytes, limits.max_audio_bytes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python app.py", description="Chat with Phi-4-multimodal in your browser.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or AppSettings.host,
                   help="interface to serve on (default 127.0.0.1; env GRADIO_SERVER_NAME, as a Space sets it)")
    p.add_argument("--port", type=int, default=int(_env("GRADIO_SERVER_PORT", AppSettings.port)),
                   help="port to serve on (default 7860; env GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="also make a gradio share link (always behind a login)")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASS", help="require this login (repeatable)")
    p.add_argument("--auth-file", type=Path, help="file of logins, one USER:PASS a line")
    p.add_argument("--standin", action="store_true", help="run the offline stand-in Space and use it (no network)")
    p.add_argument("--no-fallback", dest="fallback", action="store_false",
                   help="do not fall back to the stand-in when the Space cannot be reached")
    p.add_argument("--standin-pace-ms", type=float, default=AppSettings.standin_pace_ms,
                   help="stand-in: delay between streamed chunks")
    p.add_argument("--standin-chunks", type=int, default=AppSettings.standin_chunks, help="stand-in: chunks per reply")
    p.add_argument("--recheck-every", type=float, default=AppSettings.recheck_every_s, metavar="SECONDS",
                   help="how often to check whether the real Space answers (default 60 s)")
    p.add_argument("--allow-space-switch", action="store_true",
                   help="show a Space picker in the page: the Phi-4-multimodal Spaces the Hub lists, with their stage, "
                        "and a button that switches the app to one of them (off by default: anyone who can open the "
                        "page could switch; only Spaces of that list, never an arbitrary id)")
    # The API's flags, shared with `python -m phi4_bridge serve` (phi4_bridge.openai_api.flags): the same defaults
    # (32, 4), the app's own help; its --turns-per-client also reads PHI4_TURNS_PER_CLIENT (serve's does not).
    add_api_arguments(p, concurrency=AppSettings.concurrency_total, turns_per_client=AppSettings.turns_per_client,
                      keys_note="With --auth or --share the API answers only with a key",
                      concurrency_of=" in the whole app", clients="login, else address, over all its sessions",
                      turns_note="; env PHI4_TURNS_PER_CLIENT")
    p.set_defaults(turns_per_client=int(_env("PHI4_TURNS_PER_CLIENT", AppSettings.turns_per_client)))
    p.add_argument("--cache-max-age", type=float, metavar="SECONDS",
                   default=_env("PHI4_CACHE_MAX_AGE", AppSettings.cache_max_age_s),
                   help="delete uploads, exports and QA downloads older than this (default 6 h; env "
                        "PHI4_CACHE_MAX_AGE); everything is deleted at exit")
    p.add_argument("--visitor-idle", type=float, metavar="SECONDS",
                   default=_env("PHI4_VISITOR_IDLE", AppSettings.visitor_idle_s),
                   help="forget a visitor's session after this long without a turn (default 1 h; env "
                        "PHI4_VISITOR_IDLE)")
    p.add_argument("--mcp", action="store_true", default=_flag("PHI4_MCP"),
                   help="also serve Phi-4 as MCP tools for agents at /gradio_api/mcp/ (the same keys as /v1; needs "
                        f"the mcp package: {MCP_INSTALL}; env PHI4_MCP=1)")
    p.add_argument("--qa-db", metavar="PATH", help="the QA tab's store of runs, results and marks (env PHI4_QA_DB, "
                                                    "default qa.sqlite3 in the user's data folder)")
    p.add_argument("--qa-max-mb", type=float, metavar="MB", default=_env("PHI4_QA_MAX_MB", AppSettings.qa_max_mb),
                   help="the QA store keeps at most this many MB of uploaded files; a tab run that would pass it is "
                        f"refused (default {AppSettings.qa_max_mb:g}; env PHI4_QA_MAX_MB)")
    p.add_argument("--qa-keep-days", type=float, metavar="DAYS",
                   default=_env("PHI4_QA_KEEP_DAYS", AppSettings.qa_keep_days),
                   help=f"QA runs older than this are deleted (default {AppSettings.qa_keep_days:g}; env "
                        "PHI4_QA_KEEP_DAYS)")
    p.add_argument("--visitor-turns", metavar="N/PERIOD", default=os.environ.get("PHI4_VISITOR_TURNS"),
                   help="turns one visitor (login, else address) may send per period, e.g. 20/hour, 5/minute, "
                        f"100/day, 2/10s; 'none' for no limit (default {SHARE_DEFAULT} with --share, else none; env "
                        "PHI4_VISITOR_TURNS)")
    p.add_argument("--admin", action="append", metavar="USER",
                   default=[a for a in os.environ.get("PHI4_ADMIN", "").split(",") if a.strip()],
                   help="this login is the host: no turn limit, sees the Usage tab, may switch Spaces (repeatable; "
                        "env PHI4_ADMIN, comma-separated)")
    p.add_argument("--usage-db", type=Path, metavar="FILE", default=os.environ.get("PHI4_USAGE_DB") or None,
                   help="the usage store's SQLite file (default: usage.sqlite3 in the user's data folder, or the "
                        "--budget-store's Redis when that is given; env PHI4_USAGE_DB)")
    p.add_argument("--slow-client-timeout", type=float, metavar="SECONDS", default=_env("PHI4_SLOW_CLIENT",
                   AppSettings.slow_client_s),
                   help="a client must send its request's headers within this long (its body too, plus a second per "
                        "500 bytes), and a reply it leaves unread this long is dropped (default 20; env "
                        "PHI4_SLOW_CLIENT)")
    p.add_argument("--ui-updates-per-s", type=float, metavar="N", default=AppSettings.ui_updates_per_s,
                   help="at most this many chat updates a second while a reply streams (default 20, fewer in a "
                        "long chat: docs/app.md; 0: one for every chunk of the Space)")
    p.add_argument("--ui-updates-total-per-s", type=float, metavar="N", default=AppSettings.ui_updates_total_per_s,
                   help="at most this many chat updates a second for all the replies streaming at once, shared "
                        "between them: with many visitors each gets fewer (default 0: no shared limit)")
    p.add_argument("--budget-store", metavar="redis://HOST:PORT/DB",
                   default=os.environ.get("PHI4_BUDGET_STORE") or None,
                   help="count the turn budget (--visitor-turns) in this Redis server, shared by every replica that "
                        "names it, on any host (redis://[:PASSWORD@]HOST:PORT/DB, rediss:// for TLS; env "
                        "PHI4_BUDGET_STORE; needs the redis package: pip install 'phi4-mirror[cluster]'). Default: "
                        "this process counts alone, or with the replicas of its host (PHI4_BUDGET_DB)")
    add_arguments(p)
    return p


def _env(name: str, default: float) -> float:
    """A tunable's default from the environment (flags still win); a bad value falls back to the default."""
    try:
        return type(default)(os.environ[name])
    except (KeyError, ValueError):
        return default


def _flag(name: str) -> bool:
    """An on/off environment variable: 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _mcp_installed() -> bool:
    try:
        import mcp  # noqa: F401
    except ImportError:
        return False
    return True


def parse_login(text: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise ValueError("a login must look like USER:PASS")
    return user, password


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [parse_login(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def parse_settings(argv: list[str] | None = None) -> AppSettings:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        logins = [parse_login(a) for a in args.auth]
        if args.auth_file:
            logins += read_auth_file(args.auth_file)
    except (ValueError, OSError) as exc:
        parser.error(f"--auth/--auth-file: {exc}")
    if not args.recheck_every > 0:
        parser.error("--recheck-every must be a positive number of seconds")
    if args.turns_per_client < 1:  # the flag's own type refuses it; this is PHI4_TURNS_PER_CLIENT's value
        parser.error(f"PHI4_TURNS_PER_CLIENT must be at least 1, not {args.turns_per_client}")
    if not (args.cache_max_age > 0 and args.visitor_idle > 0):
        parser.error("--cache-max-age and --visitor-idle must be positive numbers of seconds")
    if args.mcp and not _mcp_installed():
        parser.error(f"--mcp needs the mcp package, which is not installed: {MCP_INSTALL}")
    on_space = os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("SPACE_ID"))
    try:
        given = parse_rule(args.visitor_turns) if args.visitor_turns is not None else None
    except ValueError as exc:
        parser.error(f"--visitor-turns: {exc}")
    turns = given if args.visitor_turns is not None else (parse_rule(SHARE_DEFAULT) if args.share else None)
    if not (args.qa_max_mb > 0 and args.qa_keep_days > 0):
        parser.error("--qa-max-mb and --qa-keep-days must be positive numbers")
    if not args.slow_client_timeout > 0:
        parser.error("--slow-client-timeout must be a positive number of seconds")
    if not args.ui_updates_per_s >= 0:
        parser.error("--ui-updates-per-s must be 0 or more")
    if not args.ui_updates_total_per_s >= 0:
        parser.error("--ui-updates-total-per-s must be 0 or more")
    if args.budget_store and (why := check_url(args.budget_store)):
        parser.error(f"--budget-store: {why}")
    return AppSettings(
        visitor_turns=turns, admins=tuple(dict.fromkeys(a.strip() for a in args.admin if a.strip())),
        usage_db=args.usage_db, slow_client_s=args.slow_client_timeout, on_space=on_space,
        bridge=config_from(args), host=args.host, port=args.port, share=args.share,
        auth=tuple(logins), standin=args.standin, fallback=args.fallback,
        standin_pace_ms=args.standin_pace_ms, standin_chunks=args.standin_chunks,
        concurrency_total=args.concurrency, recheck_every_s=args.recheck_every,
        allow_space_switch=args.allow_space_switch,
        turns_per_client=args.turns_per_client, cache_max_age_s=args.cache_max_age,
        cache_sweep_every_s=max(0.5, min(AppSettings.cache_sweep_every_s, args.cache_max_age / 2)),
        partial_upload_s=min(AppSettings.partial_upload_s, args.cache_max_age),
        visitor_idle_s=args.visitor_idle,
        stream_grace_s=_env("PHI4_STREAM_GRACE", AppSettings.stream_grace_s),
        login_lockout_s=_env("PHI4_LOGIN_LOCKOUT", AppSettings.login_lockout_s),
        api_keys=api_keys(args.api_key), fetch_image_urls=args.fetch_image_urls, mcp=args.mcp,
        qa_db=args.qa_db, qa_max_mb=args.qa_max_mb, qa_keep_days=args.qa_keep_days,
        browser_secret=os.environ.get("PHI4_BROWSER_SECRET") or None,
        ui_updates_per_s=args.ui_updates_per_s, ui_updates_total_per_s=args.ui_updates_total_per_s,
        budget_db=os.environ.get("PHI4_BUDGET_DB") or None,
        budget_store=args.budget_store, turn_parts=_flag("PHI4_TURN_PARTS"),
        temp_dir=os.environ.get("GRADIO_TEMP_DIR") or None,
    )

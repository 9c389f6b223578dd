"""Command line: ``python -m phi4_bridge chat "PROMPT" [--image PATH]... [--audio PATH] [--set NAME=VALUE]...``,
``python -m phi4_bridge spaces [--json]`` (Phi-4-multimodal Spaces on the Hub, their stages, whether they drive),
``python -m phi4_bridge serve --port N`` (the OpenAI-compatible API alone: ``openai_api.serve``),
``python -m phi4_bridge doctor [--json] [--no-turns]`` (can the bridge drive this Space, and why not: ``doctor``),
``python -m phi4_bridge qa ...`` (manual QA: ``phi4_bridge.qa.cli``). The entry point of ``phi4-bridge`` and of
``python -m phi4_bridge`` (whose ``__main__`` only calls ``main``).

Before a turn the Hub is asked whether the Space runs (``spaces.resolve``): ``--space auto`` takes the first running
Space the bridge can drive (the official one preferred) and says which on the first line of stderr; a Space the
Hub reports as broken, paused or building fails at once with that in words.

The reply streams to stdout; a failure is one line on stderr (no traceback) and a non-zero exit code:
2 for bad input, 3 for the Space being unavailable, 4 for quota or busy GPUs, 1 for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from ..bridge import Phi4Bridge
from ..chain import parse_setting
from ..config import BridgeConfig, api_keys
from ..errors import InputRejected, Phi4Error, exit_code
from ..events import Log, Queued, TextDelta
from ..flags import add_arguments, config_from
from ..openai_api.flags import add_api_arguments
from ..qa.cli import add_parser as add_qa
from ..spaces import list_candidates, resolve
from .doctor import add_parser as add_doctor


async def resolved_config(args: argparse.Namespace) -> BridgeConfig:
    """The configuration to use, by the Hub's word; its note (which Space, or a sleeping one) goes to stderr."""
    done = await resolve(config_from(args))
    if done.note:
        print(done.note, file=sys.stderr, flush=True)
    return done.config


async def chat(args: argparse.Namespace) -> int:
    files = list(args.image or []) + list(args.audio or [])
    try:
        options = dict(parse_setting(text) for text in args.set or [])
    except ValueError as exc:
        raise InputRejected(str(exc), reason="bad_option") from exc
    async with Phi4Bridge(await resolved_config(args)) as bridge:
        async with bridge.submit(args.prompt, files, options=options) as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, Queued) and args.verbose and event.rank is not None:
                    print(f"[queued: position {event.rank + 1} of {event.queue_size}]", file=sys.stderr)
                elif isinstance(event, Log) and event.level in ("warning", "error"):
                    print(f"[{event.level}] {event.message}", file=sys.stderr)
    sys.stdout.write("\n")
    return 0


async def spaces(args: argparse.Namespace) -> int:
    found = await list_candidates(config_from(args))
    if args.json:
        print(json.dumps([c.as_json() for c in found], indent=2))
        return 0
    rows = [("SPACE", "STAGE", "HARDWARE", "GRADIO", "LIKES", "DRIVABLE")]
    for c in found:
        stage = c.state.stage or (c.state.problem or "?").upper()
        drives = {True: "yes", False: "no", None: "-"}[c.drivable]
        rows.append((c.id + (" (official)" if c.official else ""), stage, c.state.hardware or "-",
                     c.sdk_version or "-", "-" if c.likes is None else str(c.likes), drives))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    usable = [c for c in found if c.usable]
    print()
    print(f"--space auto would use: {usable[0].id} at {usable[0].host}" if usable
          else "No Space listed here is running and drivable right now.")
    for c in found:
        if c.drivable is False:
            print(f"{c.id}: not drivable: {c.note}")
    return 0


async def serve(args: argparse.Namespace) -> int:
    # Imported here: fastapi and uvicorn are half of the CLI's start-up, and only ``serve`` needs them
    from ..openai_api.serve import serve_api

    config = await resolved_config(args)
    return await serve_api(config, host=args.host, port=args.port, keys=api_keys(args.api_key),
                           fetch_image_urls=args.fetch_image_urls, concurrency=args.concurrency,
                           per_client=args.turns_per_client)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m phi4_bridge", description="Talk to the Phi-4-multimodal Space.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chat", help="send one message and stream the reply to stdout")
    p.add_argument("prompt")
    p.add_argument("--image", action="append", metavar="PATH", help="attach an image (repeatable)")
    p.add_argument("--audio", action="append", metavar="PATH", help="attach an audio file (repeatable)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="set one of the Space's own controls for this turn, e.g. temperature=0.2 (repeatable; "
                        "an unknown name or a value out of range is refused, listing what the Space offers)")
    p.add_argument("-v", "--verbose", action="store_true", help="show queue position and log lines")
    add_arguments(p)
    p.set_defaults(run=chat)
    p = sub.add_parser("spaces", help="list Phi-4-multimodal Spaces on the Hub: stage, hardware, gradio version, "
                                      "likes, whether the bridge can drive them")
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    add_arguments(p)
    p.set_defaults(run=spaces)
    p = sub.add_parser("serve", help="serve the OpenAI-compatible API (/v1/models, /v1/chat/completions) alone")
    p.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
    add_api_arguments(p)
    add_arguments(p)
    p.set_defaults(run=serve)
    add_qa(sub)
    add_doctor(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = asyncio.run(args.run(args))
        return code
    except Phi4Error as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

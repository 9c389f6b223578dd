"""Command line: ``python -m phi4_bridge chat "PROMPT" [--image PATH]... [--audio PATH] [--set NAME=VALUE]...``.

The reply streams to stdout; a failure is one line on stderr (no traceback) and a non-zero exit code:
2 for bad input, 3 for the Space being unavailable, 4 for quota or busy GPUs, 1 for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .bridge import Phi4Bridge
from .chain import parse_setting
from .config import BridgeConfig, add_arguments
from .errors import GpuBusy, InputRejected, Phi4Error, QuotaExceeded, SpaceUnavailable
from .events import Log, Queued, TextDelta


def exit_code(error: Phi4Error) -> int:
    if isinstance(error, InputRejected):
        return 2
    if isinstance(error, SpaceUnavailable):
        return 3
    if isinstance(error, QuotaExceeded | GpuBusy):
        return 4
    return 1


async def chat(args: argparse.Namespace) -> int:
    files = list(args.image or []) + list(args.audio or [])
    try:
        options = dict(parse_setting(text) for text in args.set or [])
    except ValueError as exc:
        raise InputRejected(str(exc), reason="bad_option") from exc
    async with Phi4Bridge(BridgeConfig.from_env(args)) as bridge:
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
    try:
        from .qa.cli import add_parser as add_qa
    except ImportError:
        pass
    else:
        add_qa(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(args.run(args))
    except Phi4Error as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

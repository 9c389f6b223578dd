"""``python -m phi4_bridge doctor [--space ID | --space-url URL | --space auto] [--json] [--no-turns]``: can the
bridge drive this Space, and if not, why.

Why: the real Space cannot be reached from where the bridge is built, so the day someone points it at a Space,
what they see must say exactly what works and what does not, in a form they can paste into a bug report.

1. What it found, before any turn: the Hub's stage and host (when an id is known), ``/config`` (gradio version,
   ``api_prefix``, queue protocol), the chat's trigger, each step of the chain, where text, images and audio go,
   the options (``doctor_report``).
2. Live checks, which spend a little of the caller's ZeroGPU quota (``--no-turns`` skips them): a text turn, an
   image turn, an audio turn, a second turn that must see the first, Stop (``doctor_checks``).
3. One line a finding or check, printed as it comes, the verdict last; ``--json`` prints the same as one JSON
   document at the end. Exit 0 only when everything checked passed; otherwise docs/cli.md's codes: 3 when the Space is
   unreachable, not running or has no chat the bridge can drive, 4 when a check met a spent quota or busy GPUs,
   2 for a file the Space refused as input, 1 for anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from ..bridge import Phi4Bridge
from ..chain import PROTOCOLS, chain_problem
from ..config import BridgeConfig, space_named
from ..errors import Phi4Error, exit_code
from ..flags import add_arguments, config_from
from ..space_config import chat_chain, fetch_config
from ..spaces import resolve
from .doctor_checks import RequestLog, run_checks
from .doctor_report import (
    CheckResult,
    Finding,
    Report,
    check_line,
    describe_chain,
    finding_line,
    line,
    no_chat_sentence,
    render,
    to_json,
)

QUOTA_NOTE = ("live checks: 5 turns (6 calls), each spends a little of your ZeroGPU quota; --no-turns skips them")
ERROR_CODES = {"InputRejected": 2, "UploadRejected": 2, "SpaceUnavailable": 3, "StreamTimeout": 3,
               "QuotaExceeded": 4, "GpuBusy": 4}  # exit_code's, by the error's name as a check records it


class Printer:
    """Prints each line as it comes (text mode), or nothing until the JSON at the end."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode

    def __call__(self, text: str) -> None:
        if not self.json_mode:
            print(text, flush=True)


def _stop(report: Report, finding: Finding, code: int, say: Printer) -> Report:
    report.found.append(finding)
    say(finding_line(finding))
    report.verdict, report.exit_code = f"the bridge cannot drive this Space: {finding.detail}", code
    return report


async def examine(config: BridgeConfig, *, turns: bool = True, say: Printer | None = None,
                  hub: bool = True) -> Report:
    """The whole doctor run as a ``Report`` (also printed line by line through ``say``). ``hub``: a Space id is
    known (``--space``, or no ``--space-url``), so the Hub is asked how it runs and where."""
    say = say or Printer(True)
    report = Report(space=config.space if hub else None, space_url=config.space_url)
    if hub:
        try:
            config, found = await _hub(config)
        except Phi4Error as exc:  # not running, not found, private and refused: the Space cannot be reached
            code = exit_code(exc)
            return _stop(report, Finding("hub", False, str(exc)), 3 if code == 1 else code, say)
        report.space, report.space_url = config.space, config.space_url
    else:
        found = Finding("hub", True, f"not asked: no Space id was given, only its address {config.space_url}")
    report.found.append(found)
    say(finding_line(found))
    name = report.space or report.space_url
    requests = RequestLog()
    async with Phi4Bridge(config, trace_configs=[requests.trace]) as bridge:
        try:
            raw = await bridge.guard(fetch_config(bridge.session, bridge.config.space_url))
        except Phi4Error as exc:
            return _stop(report, Finding("config", False, str(exc)), exit_code(exc) if exit_code(exc) != 1 else 3,
                         say)
        chain = chat_chain(raw)
        if not isinstance(raw, Mapping) or chain is None:
            return _stop(report, Finding("chat", False, no_chat_sentence(name, raw)), 3, say)
        if chain.protocol not in PROTOCOLS:
            why = f"{name} cannot be driven: {chain_problem(raw)}."
            return _stop(report, Finding("config", False, why), 3, say)
        found = Finding("config", True, f"/config answered: gradio {raw.get('version') or '?'}, api_prefix "
                                        f"{raw.get('api_prefix') or ''!r}, queue protocol {raw.get('protocol') or '?'}")
        report.found.append(found)
        say(finding_line(found))
        report.chain = describe_chain(chain)
        for text in render(Report(space=None, space_url="", chain=report.chain))[:-1]:
            say(text)
        if not turns:
            report.verdict = (f"the bridge found {name}'s chat (live checks not run: --no-turns); run "
                              "without --no-turns to try a turn")
            return report
        say(line("note", QUOTA_NOTE))
        files = report.chain.get("files") or {}
        takes = {kind: bool(files.get(kind)) for kind in ("image", "audio")}
        report.checks = await run_checks(bridge, requests, takes, lambda c: say(check_line(c)))
    _verdict(report)
    return report


async def _hub(config: BridgeConfig) -> tuple[BridgeConfig, Finding]:
    """The Hub's word on the Space (``--space auto`` picks one), and the configuration turns then use."""
    resolved = await resolve(config)
    config, state = resolved.config, resolved.state
    if state is not None and state.stage is not None:
        hardware = f" on {state.hardware}" if state.hardware else ""
        return config, Finding("hub", True, f"{config.space}: {state.stage}{hardware}, host {config.space_url}")
    why = f" ({resolved.note})" if resolved.note else ""
    return config, Finding("hub", True, f"the Hub does not say how {config.space} runs{why}; asking "
                                        f"{config.space_url} itself")


def _verdict(report: Report) -> None:
    failed = [c for c in report.checks if c.ok is False]
    skipped = [c.name for c in report.checks if c.ok is None]
    skip = f" ({len(skipped)} skipped: {', '.join(skipped)})" if skipped else ""
    if not failed:
        report.verdict = f"the bridge can drive {report.space or report.space_url}: every check passed{skip}"
        report.exit_code = 0
        return
    names = ", ".join(c.name for c in failed)
    report.verdict = (f"{len(failed)} of {len(report.checks)} checks failed ({names}){skip}. For a bug report, "
                      "paste the output of the same command with --json.")
    report.exit_code = _code(failed[0])


def _code(check: CheckResult) -> int:
    return ERROR_CODES.get(check.error_type or "", 1)


async def doctor(args: argparse.Namespace) -> int:
    say = Printer(args.json)
    config = config_from(args)
    known_id = space_named(args.space) or not config.space_url_given
    report = await examine(config, turns=not args.no_turns, say=say, hub=known_id)
    if args.json:
        print(to_json(report))
    else:
        say(f"verdict: {report.verdict}")
    return report.exit_code


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "doctor", help="say whether the bridge can drive a Space, and why not: what it found, then live checks",
        description="What the bridge finds in the Space (the Hub's stage and host, /config, the chat's chain, "
                    "where text, images and audio go, the options), then live checks (a text, an image and an "
                    "audio turn, a second turn that must see the first, Stop), one line each and a verdict. "
                    "The live checks spend a little of your ZeroGPU quota. Exit 0 only when every check passes.")
    p.add_argument("--json", action="store_true", help="print the same report as one JSON document (for a bug "
                                                       "report)")
    p.add_argument("--no-turns", action="store_true", help="only what the Space's /config says: no live checks, "
                                                           "no GPU quota spent")
    add_arguments(p)
    p.set_defaults(run=doctor)
    return p


if __name__ == "__main__":  # pragma: no cover - `python -m phi4_bridge doctor` is the way in
    sys.exit("run: python -m phi4_bridge doctor")

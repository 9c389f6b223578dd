"""QA case files: JSONL, one case a line, loaded into ``Case`` objects.

    {"id": "cat-1", "image": "img/cat.png", "prompt": "What animal is this?", "expect": "cat"}

``image`` and ``audio`` are paths relative to the case file (a string, or a list of strings for several files);
either may be left out (a prompt with no file is a text-only case). ``expect`` is a substring the reply must
contain (case-sensitive; a list means every item must appear). A case without ``id`` gets its line number.

Blank lines and lines starting with ``#`` are skipped. A line that is not valid JSON or not a valid case does
not stop loading: it becomes a ``Case`` with ``invalid`` set, which the runner records as a failed case with
that message (and the line number), so one typo costs one case, not the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYS = ("id", "image", "audio", "prompt", "expect")


class CaseFileError(Exception):
    """The case file as a whole cannot be used (missing, unreadable, no cases)."""


@dataclass
class Case:
    id: str
    line: int = 0
    prompt: str = ""
    images: list[str] = field(default_factory=list)  # as written in the case file
    audios: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)
    base_dir: str = "."  # where relative paths are resolved
    invalid: str | None = None  # why this line is not a usable case
    located: dict[str, str] = field(default_factory=dict)  # as written -> where it really is (app uploads)
    # True in the app: only ``located`` files (the visitor's uploads) may ever be opened, never a path as written
    confined: bool = False

    @property
    def files(self) -> list[str]:
        """The case's files as paths this process can open (images first, then audio)."""
        return [self.locate(p) for p in self.images + self.audios]

    @property
    def image_paths(self) -> list[str]:
        return [self.locate(p) for p in self.images]

    def locate(self, path: str) -> str:
        """Where a file of the case is; ``""`` (nothing to open) for a confined case's file that was not
        uploaded, so no caller (runner, fingerprint, thumbnails) ever reads a server file a case file names."""
        found = self.located.get(path)
        if found:
            return found
        return "" if self.confined else resolve(self.base_dir, path)

    def fingerprint(self) -> str:
        """Changes when the case's definition or the contents of its files change (used by resume)."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(json.dumps([self.prompt, self.images, self.audios, self.expect, self.invalid]).encode())
        for path in self.files:
            try:
                with open(path, "rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
            except OSError:
                digest.update(b"\0missing")
            digest.update(b"\0")
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """The case's own fields for a result record: lists collapse to a string when there is one file."""
        return {
            "id": self.id,
            "line": self.line,
            "image": _one_or_list(self.images),
            "audio": _one_or_list(self.audios),
            "prompt": self.prompt,
            "expect": _one_or_list(self.expect),
        }


def _one_or_list(values: list[str]) -> str | list[str] | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def resolve(base_dir: str, path: str) -> str:
    expanded = os.path.expanduser(path)
    return expanded if os.path.isabs(expanded) else os.path.normpath(os.path.join(base_dir, expanded))


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise ValueError(f'"{key}" must be a string or a list of non-empty strings')


def parse_case(data: Any, line: int, base_dir: str) -> Case:
    """One parsed JSON value to a ``Case``; ValueError says what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError("a case must be a JSON object like {\"image\": ..., \"prompt\": ...}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(allowed: {', '.join(KEYS)})")
    case_id = data.get("id", line)
    if isinstance(case_id, bool) or not isinstance(case_id, str | int) or str(case_id).strip() == "":
        raise ValueError('"id" must be a non-empty string or a number')
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise ValueError('"prompt" must be a string')
    images, audios = _strings(data.get("image"), "image"), _strings(data.get("audio"), "audio")
    expect = _strings(data.get("expect"), "expect")
    if not prompt.strip() and not images and not audios:
        raise ValueError("a case needs a prompt, an image or an audio file")
    return Case(id=str(case_id), line=line, prompt=prompt, images=images, audios=audios, expect=expect,
                base_dir=base_dir)


def parse_lines(lines: list[str], base_dir: str) -> list[Case]:
    """Cases from JSONL text lines; bad lines become invalid cases, duplicate ids are made invalid too."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            case = parse_case(json.loads(text), number, base_dir)
        except json.JSONDecodeError as exc:
            case = Case(id=str(number), line=number, base_dir=base_dir,
                        invalid=f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
        except ValueError as exc:
            case = Case(id=str(number), line=number, base_dir=base_dir, invalid=f"line {number}: {exc}")
        if case.id in seen:
            first = seen[case.id]
            case = Case(id=f"{case.id}@line{number}", line=number, base_dir=base_dir,
                        invalid=f"line {number}: id {case.id!r} is already used on line {first}")
        seen[case.id] = number
        cases.append(case)
    return cases


def load_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Every case of a JSONL case file, in file order. CaseFileError when the file itself is unusable."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaseFileError(f"{file}: no such case file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(f"{file}: cannot read the case file ({exc}).") from None
    cases = parse_lines(text.splitlines(), str(file.resolve().parent))
    if not cases:
        raise CaseFileError(f"{file}: no cases in the file (write one JSON object a line).")
    return cases

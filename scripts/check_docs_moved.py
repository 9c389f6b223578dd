"""Every line of an older README.md is still somewhere in README.md or docs/*.md (issue 26: the manual moved into
docs/ and must lose no promise). Headings count without their '#'s, as a page's level changes with the move.

    python scripts/check_docs_moved.py [REV]      # REV: the README to check against (default 3a740f8: the
                                                  # last one before the split, 924 lines)

Prints each line that is found nowhere, and exits 1 if there is any: each must be a line rewritten on purpose
(a stale statement fixed, a cross-reference made a link), said so in the commit that did it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lines(text: str) -> list[str]:
    """The text's non-blank lines, stripped, a heading without its '#'s; the front matter (the Space card) kept."""
    return [re.sub(r"^#+ ", "", line.strip()) for line in text.splitlines() if line.strip()]


def main() -> int:
    rev = sys.argv[1] if len(sys.argv) > 1 else "3a740f8"
    old = subprocess.run(["git", "show", f"{rev}:README.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    now = set(lines((ROOT / "README.md").read_text(encoding="utf-8")))
    for page in sorted((ROOT / "docs").glob("*.md")):
        now |= set(lines(page.read_text(encoding="utf-8")))
    missing = [line for line in lines(old.stdout) if line not in now]
    for line in missing:
        print(line)
    print(f"{len(missing)} of {len(lines(old.stdout))} lines of README.md at {rev} are in neither README.md nor docs/",
          file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

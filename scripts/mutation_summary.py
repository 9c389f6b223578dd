"""The score of one mutmut run and its surviving mutants, as tests/README.md keeps them (``scripts/mutation.sh``).

Run in the copy mutmut ran in (``mutants/`` holds a ``.meta`` file per mutated module): prints one line with the
module's score, then each survivor with its diff, so a survivor can be killed by a test or accepted with a reason.
Why a script of ours: mutmut's own ``results`` lists names only, and its score counts no figure per module.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

# mutmut 3's exit codes of a mutant's test run (mutmut/stats.py): what each means for the score
KILLED = {1, 3, 36, -24, 24, 152, 255, 37}  # a test failed, pytest broke, it timed out, or the type check caught it
SURVIVED = {0}
NO_TESTS = {5, 33}  # no selected test reaches the function: counted as survivors (nothing would notice the break)


def statuses(meta: Path) -> dict[str, int | None]:
    """Each mutant's exit code (None: not run) from mutmut's ``.meta`` file."""
    data: dict[str, dict[str, int | None]] = json.loads(meta.read_text())
    return data["exit_code_by_key"]


def score_line(module: str, codes: dict[str, int | None]) -> str:
    """``mirror/visitors/budget.py: 225/230 killed (97.8 %), 5 survived, 0 without a test, 0 not run``."""
    count: Counter[str] = Counter()
    for code in codes.values():
        if code is None:
            count["not run"] += 1
        elif code in KILLED:
            count["killed"] += 1
        elif code in NO_TESTS:
            count["no tests"] += 1
        elif code in SURVIVED:
            count["survived"] += 1
        else:
            count["other"] += 1
    total = len(codes)
    share = 100.0 * count["killed"] / total if total else 0.0
    return (f"{module}: {count['killed']}/{total} killed ({share:.1f} %), {count['survived']} survived, "
            f"{count['no tests']} without a test, {count['not run']} not run, {count['other']} other")


def main(argv: list[str]) -> int:
    """Print the score and the survivors of the module named (``mirror/visitors/budget.py``), of only the mutants that
    match the globs after it when some are given (``phi4_bridge.messages.x_check_*``): the scope it was run on."""
    if not argv:
        print("usage: mutation_summary.py MODULE [MUTANT-GLOB ...]", file=sys.stderr)
        return 2
    module, scope = argv[0], argv[1:]
    meta = Path("mutants") / f"{module}.meta"
    if not meta.exists():
        print(f"{module}: no mutmut results here ({meta} missing)")
        return 1
    codes = {name: code for name, code in statuses(meta).items()
             if not scope or any(fnmatch.fnmatch(name, glob) for glob in scope)}
    print(score_line(module + (f" ({', '.join(scope)})" if scope else ""), codes))
    untested: Counter[str] = Counter()
    for name, code in sorted(codes.items()):
        if code in NO_TESTS:
            untested[name.rsplit("__mutmut_", 1)[0]] += 1
        elif code in SURVIVED:
            # the diff of each survivor (mutmut's own show; a few seconds each, so only for survivors)
            shown = subprocess.run(["mutmut", "show", name], capture_output=True, text=True)
            lines = [line for line in shown.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
            print(f"  {name} (survived)")
            for line in lines or [f"(mutmut show said nothing: {shown.stderr.strip()[-200:]})"]:
                print(f"      {line.strip()}")
    for function, count in sorted(untested.items()):
        print(f"  {function}: {count} mutants that no selected test reaches")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

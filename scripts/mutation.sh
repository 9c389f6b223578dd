#!/usr/bin/env bash
# The mutation check (issue 23; results and accepted survivors in tests/README.md).
#
# Runs mutmut over the modules that enforce limits and turn failures into sentences, one module at a time, each
# against only the fast in-process unit tests that speak of it (pure functions called directly: a mutant is
# judged in seconds, never by starting an app). Each module runs in a fresh copy of the work tree under
# $PHI4_MUTATION_DIR (default /tmp/phi4-mutation/<module>), so the tree itself is never touched, and ends with its
# score and its surviving mutants (scripts/mutation_summary.py).
#
#   pip install -r requirements-mutation.txt
#   bash scripts/mutation.sh                      # every module below
#   bash scripts/mutation.sh mirror/visitors/budget.py     # one (or several) of them
#
# PHI4_MUTATION_JOBS (default 1): mutants run at once; the machine's other work shares its cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${PHI4_MUTATION_DIR:-${TMPDIR:-/tmp}/phi4-mutation}
JOBS=${PHI4_MUTATION_JOBS:-1}
ALL=(mirror/visitors/budget.py phi4_bridge/messages.py mirror/door/guard.py phi4_bridge/openai_api/bounds.py phi4_bridge/errors.py
     mirror/door/middleware.py phi4_bridge/chain.py)

# The unit tests of a module, one pytest argument a line: only test files (or tests) that call its functions
# in-process. Those that start an app or a stand-in are left out: they are the suite's, not the mutation check's.
tests_for() {
    case "$1" in
        mirror/visitors/budget.py) printf '%s\n' tests/test_budget.py tests/test_budget_edges.py \
            -k 'not (over_budget or only_the_host or restart_of_the_app)' ;;
        phi4_bridge/messages.py) printf '%s\n' tests/test_messages.py tests/test_limits_edges.py ;;
        mirror/door/guard.py) printf '%s\n' tests/test_bounds.py tests/test_guard_edges.py ;;
        phi4_bridge/openai_api/bounds.py) printf '%s\n' tests/test_bounds.py tests/test_limits_edges.py tests/test_bounds_edges.py ;;
        phi4_bridge/errors.py) printf '%s\n' tests/test_errors.py tests/test_zerogpu_messages.py \
            tests/test_errors_edges.py tests/test_errors_words.py ;;
        mirror/door/middleware.py) printf '%s\n' tests/test_door_edges.py ;;
        phi4_bridge/chain.py) printf '%s\n' tests/test_chain.py tests/test_chain_configs.py tests/test_chain_edges.py ;;
        *) echo "mutation.sh: no unit tests named for $1 (see tests_for in $0)" >&2; return 1 ;;
    esac
}

# The functions of a module that the check mutates (mutmut's mutant names, globs), when not all of them: in
# messages.py only the limits and the characters refused, not the reading of the Space's replies; in guard.py
# the limits and tables, not what reads gradio's live queue (the app's tests over loopback cover that).
scope_for() {
    case "$1" in
        phi4_bridge/messages.py) printf '%s\n' 'phi4_bridge.messages.x_check_*' 'phi4_bridge.messages.x_has_*' ;;
        mirror/door/guard.py) printf '%s\n' 'mirror.door.guard.x_event_body_limit*' 'mirror.door.guard.x_upload_request_limit*' \
            'mirror.door.guard.x_release*' 'mirror.door.guard.x_valid_session_hash*' 'mirror.door.guard.x_address_of*' \
            'mirror.door.guard.xǁStreamOpensǁ*' 'mirror.door.guard.xǁLoginThrottleǁ*' 'mirror.door.guard.xǁGuardǁcheck_message*' \
            'mirror.door.guard.xǁGuardǁover_budget*' ;;
        *) ;;
    esac
}

command -v mutmut >/dev/null || { echo "mutation.sh: mutmut is missing: pip install -r requirements-mutation.txt" >&2; exit 2; }
[ $# -gt 0 ] && MODULES=("$@") || MODULES=("${ALL[@]}")

for module in "${MODULES[@]}"; do
    mapfile -t selection < <(tests_for "$module")
    mapfile -t scope < <(scope_for "$module")
    # a test file named for the module but not written yet is simply left out
    present=()
    for arg in "${selection[@]}"; do
        if [[ $arg == tests/*.py && ! -e $ROOT/$arg ]]; then continue; fi
        present+=("$arg")
    done
    if ! printf '%s\n' "${present[@]}" | grep -q '^tests/.*\.py$'; then
        # never an empty selection: mutmut would then run the whole suite, apps and browsers included
        echo "== $module: skipped, none of its unit tests exists yet (${selection[*]})"
        continue
    fi
    copy=$WORK/${module//\//_}
    rm -rf "$copy" && mkdir -p "$copy"
    # the work tree as it is (tracked and new files, not ignored ones), modification times kept
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
        | tar -xf - -C "$copy"
    {
        echo "[mutmut]"
        echo "source_paths ="; printf '    %s\n' mirror/ phi4_bridge/
        echo "only_mutate = $module"
        echo "also_copy ="; printf '    %s\n' app.py phi4_standin/  # the stand-in: tests/conftest.py imports it
        echo "pytest_add_cli_args ="; printf '    %s\n' -p no:randomly -p no:cacheprovider -q
        echo "pytest_add_cli_args_test_selection ="; printf '    %s\n' "${present[@]}"
    } > "$copy/setup.cfg"
    echo "== $module: ${present[*]}"
    start=$(date +%s)
    # CI=true: hypothesis's derandomized profile (tests/conftest.py), so a mutant meets the same examples each run
    (cd "$copy" && CI=true mutmut run --max-children "$JOBS" "${scope[@]}" >"$copy/mutmut.log" 2>&1) || {
        echo "mutation.sh: mutmut failed on $module; its output: $copy/mutmut.log" >&2; tail -20 "$copy/mutmut.log" >&2
        exit 1; }
    echo "   took $(( $(date +%s) - start )) s"
    (cd "$copy" && python3 "$ROOT/scripts/mutation_summary.py" "$module" "${scope[@]}")
done

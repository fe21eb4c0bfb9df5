#!/usr/bin/env bash
# Runs every nimsync test suite and ends with one line "N passed, N failed"
# adding up all of them. Each suite's full output goes to build/test-logs/.
#
# Suites: formatting and lint checks, Rust unit/integration/doc tests (with
# the header freshness test), the metrics exposition against promtool and a
# real Prometheus server, loom models, the exported-symbol check, the C
# programs under valgrind, docs without warnings, pytest, and the Nim tests.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
: >"$LOGS/summary.tsv"

PASSED=0
FAILED=0

record() { # suite passed failed
    PASSED=$((PASSED + $2))
    FAILED=$((FAILED + $3))
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$LOGS/summary.tsv"
    printf '==> %-28s %5d passed, %d failed\n' "$1" "$2" "$3"
}

# run NAME PARSER CMD...: runs CMD with output to the log (and the console
# when VERBOSE=1), then counts with PARSER (a function reading the log).
run() {
    local name=$1 parser=$2
    shift 2
    local log="$LOGS/$name.log"
    echo "--> $name: $*"
    if [ "${VERBOSE:-0}" = 1 ]; then
        "$@" 2>&1 | tee "$log"
        local rc=${PIPESTATUS[0]}
    else
        "$@" >"$log" 2>&1
        local rc=$?
    fi
    local counts
    counts=$($parser "$log" "$rc")
    record "$name" ${counts}
    if [ "${counts#* }" != "0" ] || [ "$rc" -ne 0 ]; then
        echo "    (last lines of $log)"
        tail -n 25 "$log" | sed 's/^/    | /'
    fi
}

# Counters: each prints "passed failed".
count_check() { [ "$2" -eq 0 ] && echo "1 0" || echo "0 1"; }
count_cargo() {
    local p f
    p=$(grep -Eo '[0-9]+ passed' "$1" | awk '{s+=$1} END {print s+0}')
    f=$(grep -Eo '[0-9]+ failed' "$1" | awk '{s+=$1} END {print s+0}')
    # A build failure runs no test but must not pass silently.
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$p $f"
}
count_pytest() {
    local line p f e
    line=$(grep -E '(passed|failed|error)' "$1" | tail -n 1)
    p=$(echo "$line" | grep -Eo '[0-9]+ passed' | awk '{print $1+0}')
    f=$(echo "$line" | grep -Eo '[0-9]+ failed' | awk '{print $1+0}')
    e=$(echo "$line" | grep -Eo '[0-9]+ errors?' | awk '{print $1+0}')
    p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$p $f"
}
count_pass_lines() { # C programs: PASS/FAIL lines; valgrind or crash adds a failure
    local p f
    p=$(grep -c '^PASS ' "$1")
    f=$(grep -c '^FAIL ' "$1")
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$p $f"
}
count_nim() { # std/unittest: "[OK] name" / "[FAILED] name"
    local p f
    p=$(grep -cE '^\s*\[OK\]' "$1")
    f=$(grep -cE '^\s*\[FAILED\]' "$1")
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    echo "$p $f"
}

# --- Rust -------------------------------------------------------------------
run rustfmt count_check cargo fmt --all -- --check
run clippy count_check cargo clippy --workspace --all-targets -- -D warnings
run cargo-test count_cargo cargo test --workspace --exclude nimsync-python
run prometheus count_pass_lines tests/prometheus/run.sh
run loom count_cargo env LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --release \
    --target-dir target/loom --test loom_channel --test loom_cancel --test loom_tracing --test loom_metrics --lib
run rustdoc count_check env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# --- C ABI ------------------------------------------------------------------
make -s install PREFIX="$ROOT/build/prefix" >"$LOGS/install.log" 2>&1 || {
    record install 0 1
    tail -n 30 "$LOGS/install.log"
}
exported_symbols_are_nimsync_only() {
    local bad
    nm -D --defined-only "$ROOT/build/prefix/lib/libnimsync.so" | awk '{print $3}' | tee /dev/stderr >/dev/null
    bad=$(nm -D --defined-only "$ROOT/build/prefix/lib/libnimsync.so" | awk '{print $3}' | grep -v '^nimsync_')
    [ -z "$bad" ] || { echo "non-nimsync symbols exported: $bad"; return 1; }
}
run symbols count_check exported_symbols_are_nimsync_only

c_tests_under_valgrind() {
    local status=0 src bin
    export PKG_CONFIG_PATH="$ROOT/build/prefix/lib/pkgconfig"
    mkdir -p "$ROOT/build/c"
    for src in "$ROOT"/tests/c/test_*.c; do
        bin="$ROOT/build/c/$(basename "$src" .c)"
        # shellcheck disable=SC2046
        cc -std=c11 -Wall -Wextra -Werror -O1 -g "$src" -o "$bin" \
            $(pkg-config --cflags --libs nimsync) -lpthread \
            -Wl,-rpath,"$ROOT/build/prefix/lib" || { echo "FAIL compile $(basename "$src")"; status=1; continue; }
        valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=99 "$bin" || status=1
    done
    return $status
}
run c-valgrind count_pass_lines c_tests_under_valgrind

# --- Python -----------------------------------------------------------------
run python-build count_check make -s build-python
run pytest count_pytest "$ROOT/.venv/bin/python" -m pytest "$ROOT/python/tests" -q -p no:cacheprovider

# --- Nim --------------------------------------------------------------------
nim_tests() (
    status=0
    cd "$ROOT/nim" || exit 1
    for t in tests/test_*.nim; do
        nim c -r --hints:off --mm:orc --threads:on -d:release --outdir:"$ROOT/build/nim" "$t" || status=1
    done
    exit $status
)
run nim-tests count_nim nim_tests
run nim-doc count_check make -s doc-nim

echo
echo "suite totals in build/test-logs/summary.tsv; logs beside it"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

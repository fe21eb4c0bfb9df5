#!/usr/bin/env bash
# The metrics exposition against the real Prometheus tools (Debian package
# `prometheus`):
#   1. `promtool check metrics` accepts the exposition of a collector with
#      every metric type, label values with quotes, backslashes and newlines,
#      and nimsync's runtime metrics (core/examples/metrics_server.rs);
#   2. a Prometheus server started here on loopback (temporary directory,
#      generated config, 1 s scrape interval, free ports) scrapes the example's
#      built-in /metrics endpoint, and its query API (/api/v1/query) returns
#      every value the example recorded.
# Prints one PASS/FAIL line per check and a final "N passed, N failed" line;
# exits non-zero on any failure. A missing tool is a FAIL, never a skip.
#
#   tests/prometheus/run.sh
set -uo pipefail
cd "$(dirname "$0")/../.."

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

work=$(mktemp -d "${TMPDIR:-/tmp}/nimsync-prometheus.XXXXXX")
example_pid=""
prom_pid=""
cleanup() {
    exec 3>&- 2>/dev/null || true
    [ -n "$example_pid" ] && kill "$example_pid" 2>/dev/null && wait "$example_pid" 2>/dev/null
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

for tool in promtool prometheus python3; do
    if ! command -v "$tool" >/dev/null; then
        fail "$tool is not installed (Debian: apt-get install prometheus python3; scripts/bootstrap.sh does it)"
    fi
done
[ "$failed" -eq 0 ] || finish

if ! cargo build -q --release -p nimsync-core --example metrics_server 2>"$work/build.log"; then
    cat "$work/build.log" >&2
    fail "building core/examples/metrics_server.rs"
    finish
fi
example="${CARGO_TARGET_DIR:-target}/release/examples/metrics_server"

# 1. promtool on the exposition.
if "$example" --print >"$work/exposition.txt" 2>"$work/example.err"; then
    if promtool check metrics <"$work/exposition.txt" >"$work/promtool.out" 2>&1; then
        lines=$(grep -vc '^#' "$work/exposition.txt")
        pass "promtool check metrics accepts the exposition ($lines samples, every type, escaped labels, runtime metrics)"
    else
        sed 's/^/    /' "$work/promtool.out"
        fail "promtool check metrics rejects the exposition"
    fi
else
    cat "$work/example.err" >&2
    fail "metrics_server --print"
fi

# 2. A real Prometheus server scrapes the built-in endpoint.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
mkfifo "$work/in" "$work/out"
"$example" --serve 127.0.0.1:0 <"$work/in" >"$work/out" 2>"$work/example.err" &
example_pid=$!
exec 3>"$work/in"     # the example serves until this closes
exec 4<"$work/out"
target=""
: >"$work/expected.tsv"
while IFS= read -r -t 60 -u 4 line; do
    case "$line" in
        "listening "*) target=${line#listening } ;;
        expect*) printf '%s\n' "${line#expect	}" >>"$work/expected.tsv" ;;
        ready) break ;;
    esac
done
if [ -z "$target" ] || [ "$line" != ready ]; then
    cat "$work/example.err" >&2
    fail "metrics_server --serve did not start"
    finish
fi
pass "built-in endpoint listening on $target"

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nimsync
    metrics_path: /metrics
    static_configs:
      - targets: ["$target"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!

# Query every expected series until it shows up (Prometheus needs a scrape
# or two after start-up), then compare values. Deadline: 60 s in total.
python3 - "$prom_port" "$work/expected.tsv" >"$work/checks.out" 2>&1 <<'PY'
import json, math, sys, time, urllib.parse, urllib.request

port, expected_path = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60

def query(q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"query {q!r}: {body}")
    return body["data"]["result"]

def wait_for(q, pick):
    last = None
    while time.monotonic() < deadline:
        try:
            result = query(q)
            hit = pick(result)
            if hit is not None:
                return hit
            last = result
        except OSError as e:  # server still starting
            last = e
        time.sleep(0.5)
    return last

up = wait_for('up{job="nimsync"}', lambda r: r[0] if r and r[0]["value"][1] == "1" else None)
if isinstance(up, dict):
    print("PASS Prometheus scrapes the endpoint (up == 1)")
else:
    print(f"FAIL Prometheus never scraped the endpoint: {up!r}")

for line in open(expected_path, encoding="utf-8"):
    name, labels, value = line.rstrip("\n").split("\t")
    labels, value = json.loads(labels), float(value)
    def pick(result, labels=labels):
        for s in result:
            m = s["metric"]
            if all(m.get(k) == v for k, v in labels.items()):
                return s
        return None
    hit = wait_for(name, pick)
    shown = name + json.dumps(labels, ensure_ascii=False)
    if not isinstance(hit, dict):
        print(f"FAIL {shown} not found via /api/v1/query (last answer: {hit!r})")
        continue
    got = float(hit["value"][1])
    if math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-12):
        print(f"PASS /api/v1/query {shown} == {hit['value'][1]}")
    else:
        print(f"FAIL /api/v1/query {shown}: got {got}, recorded {value}")
PY
py_status=$?
cat "$work/checks.out"
passed=$((passed + $(grep -c '^PASS ' "$work/checks.out")))
failed=$((failed + $(grep -c '^FAIL ' "$work/checks.out")))
if [ "$py_status" -ne 0 ]; then
    fail "the query checks crashed (exit $py_status)"
fi
if [ "$failed" -ne 0 ]; then
    echo "--- prometheus log" >&2
    tail -20 "$work/prometheus.log" >&2
fi
finish

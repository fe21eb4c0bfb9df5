"""Combine the benchmark results of one ``make bench`` run into a table and a chart.

Every benchmark program (Rust, C, Python, Nim) prints one JSON object per result;
``make bench`` collects them in ``build/bench/*.jsonl``. This script reads those
files, prints each suite as a table with ratios to the reference implementation of
the same run, checks the targets the project set itself, and draws the same numbers
as a PNG chart (matplotlib, when it is installed).

    python bench/report.py build/bench            # table + build/bench/nimsync-bench.png
    python bench/report.py build/bench --no-chart # table only
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional


@dataclass(frozen=True)
class Result:
    suite: str
    metric: str
    case: str
    impl: str
    value: float  # millions per second for throughput, ns for latencies and op costs, ms for runs
    p99: Optional[float] = None
    oversubscribed: bool = False
    cores: int = 0


def load(directory: Path) -> list[Result]:
    results = []
    for path in sorted(directory.glob("*.jsonl")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{line_no}: not JSON ({e}): {line!r}")
            value = next((r[k] for k in ("mps", "median_ns", "ns", "ms") if k in r), None)
            if value is None:
                raise SystemExit(f"{path}:{line_no}: no mps, median_ns, ns or ms field")
            results.append(
                Result(
                    suite=r["suite"],
                    metric=r["metric"],
                    case=r["case"],
                    impl=r["impl"],
                    value=float(value),
                    p99=r.get("p99_ns"),
                    oversubscribed=bool(r.get("oversubscribed", False)),
                    cores=int(r.get("cores", 0)),
                )
            )
    return results


def find(results: Iterable[Result], suite: str, metric: str, case: str, impl: str) -> Optional[Result]:
    return next(
        (r for r in results if (r.suite, r.metric, r.case, r.impl) == (suite, metric, case, impl)),
        None,
    )


# (title, rows selected, reference impl per case, higher is better)
SECTIONS: list[tuple[str, Callable[[Result], bool], dict[str, tuple[str, str]], bool]] = [
    (
        "Throughput, u64, capacity 1024 (M msgs/s; ratio to crossbeam-channel)",
        lambda r: r.suite in ("rust", "c") and r.metric == "throughput",
        {c: ("rust", "crossbeam-channel") for c in ("spsc", "mpsc", "mpmc")},
        True,
    ),
    (
        "Ping-pong round trip (ns, median and p99; ratio of medians to crossbeam-channel)",
        lambda r: r.suite in ("rust", "c") and r.metric == "pingpong",
        {"pingpong": ("rust", "crossbeam-channel")},
        False,
    ),
    (
        "Python (M msgs/s; ratio to queue.Queue, asyncio.Queue, call_soon_threadsafe)",
        lambda r: r.suite == "python" and r.metric == "throughput",
        {
            "threads": ("python", "queue.Queue"),
            "asyncio": ("python", "asyncio.Queue"),
            "thread->asyncio": ("python", "call_soon_threadsafe"),
        },
        True,
    ),
    (
        "Python wake latency thread<->asyncio (ns; ratio to call_soon_threadsafe)",
        lambda r: r.suite == "python" and r.metric == "pingpong",
        {"thread<->asyncio": ("python", "call_soon_threadsafe")},
        False,
    ),
    (
        "Python binding layer, one thread (ns per try_send+try_recv; ratio to queue.SimpleQueue)",
        lambda r: r.suite == "python" and r.metric == "op_ns",
        {"try_send+try_recv": ("python", "queue.SimpleQueue")},
        False,
    ),
    (
        "Nim across 2 threads (M msgs/s; ratio to system Channel)",
        lambda r: r.suite == "nim" and r.metric == "throughput",
        {"ints": ("nim", "system Channel"), "strings": ("nim", "system Channel")},
        True,
    ),
    (
        "Nim ping-pong (ns; ratio of medians to system Channel)",
        lambda r: r.suite == "nim" and r.metric == "pingpong",
        {"pingpong": ("nim", "system Channel")},
        False,
    ),
    (
        "Spawn and join 1,000,000 empty tasks (M tasks/s; ratio to rayon scope)",
        lambda r: r.metric == "spawn",
        {"spawn+join 1M": ("rust", "rayon scope")},
        True,
    ),
    (
        "fib(30), fork-join above n = 20 (ms; ratio to rayon::join)",
        lambda r: r.metric == "fib_ms",
        {"fib(30) cutoff 20": ("rust", "rayon::join")},
        False,
    ),
    (
        "Tracing: span start+end (ns, batch exporter running)",
        lambda r: r.metric == "tracing",
        {},
        False,
    ),
    (
        "Tracing at 1% sampling on a channel ping-pong (ns per round trip; ratio to untraced)",
        lambda r: r.metric == "tracing overhead",
        {"pingpong": ("rust", "nimsync")},
        False,
    ),
    (
        "Metrics recording, 1 and 2 threads on one metric (ns per op; ratio to the prometheus crate)",
        lambda r: r.metric == "record_ns",
        {c: ("rust", "prometheus crate") for c in ("counter 1 thread", "counter 2 threads", "histogram 1 thread", "histogram 2 threads")},
        False,
    ),
    (
        "Metrics on a channel ping-pong, round trips recorded in a histogram (ns per round trip; ratio to no metrics)",
        lambda r: r.metric == "metrics_overhead",
        {"pingpong": ("rust", "no metrics")},
        False,
    ),
]


def ratio(value: float, ref: Optional[Result], higher_better: bool) -> str:
    if ref is None or ref.value == 0 or value == 0:
        return "-"
    x = value / ref.value if higher_better else ref.value / value
    return f"{x:.2f}x"


def print_tables(results: list[Result]) -> None:
    for title, select, refs, higher in SECTIONS:
        rows = [r for r in results if select(r)]
        if not rows:
            continue
        print(f"\n{title}")
        print(f"  {'case':<18} {'implementation':<28} {'value':>10} {'p99':>10} {'ratio':>8}")
        for r in sorted(rows, key=lambda r: (list(refs).index(r.case) if r.case in refs else 99, -r.value if higher else r.value)):
            ref_key = refs.get(r.case)
            ref = find(results, ref_key[0], r.metric, r.case, ref_key[1]) if ref_key else None
            label = f"{r.impl} [{r.suite}]" if r.suite == "c" else r.impl
            note = "  (threads > cores)" if r.oversubscribed else ""
            p99 = f"{r.p99:.0f}" if r.p99 is not None else ""
            value = f"{r.value:.2f}" if higher or r.value < 100 else f"{r.value:.0f}"
            print(f"  {r.case:<18} {label:<28} {value:>10} {p99:>10} {ratio(r.value, ref, higher):>8}{note}")


# (description, numerator, denominator, minimum ratio of numerator/denominator)
TARGETS = [
    ("core SPSC >= 2x crossbeam-channel", ("rust", "throughput", "spsc", "nimsync"), ("rust", "throughput", "spsc", "crossbeam-channel"), 2.0),
    ("core SPSC >= 0.8x rtrb (spinning)", ("rust", "throughput", "spsc", "nimsync"), ("rust", "throughput", "spsc", "rtrb (spins)"), 0.8),
    ("core MPSC >= 1.2x crossbeam-channel", ("rust", "throughput", "mpsc", "nimsync"), ("rust", "throughput", "mpsc", "crossbeam-channel"), 1.2),
    ("core MPMC >= 1.2x crossbeam-channel", ("rust", "throughput", "mpmc", "nimsync"), ("rust", "throughput", "mpmc", "crossbeam-channel"), 1.2),
    # The C ABI loaded into the Rust benchmark's process runs in the same rounds as the
    # core, so this ratio is not at the mercy of the machine's mood between programs.
    *[
        (f"C ABI {c.upper()} within 10% of core", ("rust", "throughput", c, "nimsync C ABI (dlopen)"), ("rust", "throughput", c, "nimsync"), 0.9)
        for c in ("spsc", "mpsc", "mpmc")
    ],
    ("Python >= 5x queue.Queue (2 threads)", ("python", "throughput", "threads", "nimsync.Channel spsc"), ("python", "throughput", "threads", "queue.Queue"), 5.0),
    ("Python >= 2x asyncio.Queue (one loop)", ("python", "throughput", "asyncio", "nimsync aio"), ("python", "throughput", "asyncio", "asyncio.Queue"), 2.0),
    ("Nim >= 5x system Channel (ints)", ("nim", "throughput", "ints", "nimsync spsc"), ("nim", "throughput", "ints", "system Channel"), 5.0),
    ("TaskGroup spawn >= 1.0x rayon scope", ("rust", "spawn", "spawn+join 1M", "nimsync TaskGroup"), ("rust", "spawn", "spawn+join 1M", "rayon scope"), 1.0),
    # Times: the ratio is rayon's time over ours, so "within 1.2x" is >= 1/1.2.
    ("fib within 1.2x of rayon::join", ("rust", "fib_ms", "fib(30) cutoff 20", "rayon::join"), ("rust", "fib_ms", "fib(30) cutoff 20", "nimsync join"), 1 / 1.2),
    # Times again: untraced over traced, so "< 5% overhead" is >= 1/1.05.
    ("tracing at 1% < 5% on ping-pong", ("rust", "tracing overhead", "pingpong", "nimsync"), ("rust", "tracing overhead", "pingpong", "nimsync+tracing 1%"), 1 / 1.05),
    # Times: bare over recorded, so "<= 10% overhead" is >= 1/1.10.
    ("metrics full collection <= 10% on ping-pong", ("rust", "metrics_overhead", "pingpong", "no metrics"), ("rust", "metrics_overhead", "pingpong", "full collection"), 1 / 1.10),
    ("metrics at 1% sampling < 5% on ping-pong", ("rust", "metrics_overhead", "pingpong", "no metrics"), ("rust", "metrics_overhead", "pingpong", "1% sampling"), 1 / 1.05),
]


def check_targets(results: list[Result]) -> None:
    print("\nTargets (same run)")
    for desc, num, den, minimum in TARGETS:
        a, b = find(results, *num), find(results, *den)
        if a is None or b is None:
            print(f"  {desc:<42} not measured in this run")
            continue
        x = a.value / b.value
        print(f"  {desc:<42} {x:6.2f}x  {'met' if x >= minimum else 'MISSED'}")
    cores = max((r.cores for r in results), default=0)
    print(f"\n{cores} cores; rows marked (threads > cores) ran oversubscribed.")


def chart(results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no chart", file=sys.stderr)
        return False
    panels = [(t, [r for r in results if sel(r)], higher) for t, sel, _, higher in SECTIONS]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for ax, (title, rows, higher) in zip(axes[:, 0], panels):
        cases = list(dict.fromkeys(r.case for r in rows))
        impls = list(dict.fromkeys((r.impl if r.suite != "c" else r.impl) for r in rows))
        width = 0.8 / len(impls)
        for i, impl in enumerate(impls):
            xs, ys = [], []
            for j, case in enumerate(cases):
                r = next((r for r in rows if r.impl == impl and r.case == case), None)
                if r is not None:
                    xs.append(j + i * width - 0.4 + width / 2)
                    ys.append(r.value)
            bars = ax.bar(xs, ys, width, label=impl)
            ax.bar_label(bars, fmt="%.3g", fontsize=6, rotation=90, padding=2)
        ax.set_xticks(range(len(cases)), cases)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("M msgs/s (higher is better)" if higher else "ns (lower is better)", fontsize=8)
        values = [r.value for r in rows if r.value > 0]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")  # peers an order of magnitude apart stay readable
        ax.legend(fontsize=6, ncol=3, loc="upper right")
    cores = max((r.cores for r in results), default=0)
    fig.suptitle(f"nimsync beside its peers, one run, {cores} cores", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="directory holding the *.jsonl results")
    parser.add_argument("--no-chart", action="store_true", help="print the table only")
    args = parser.parse_args()
    results = load(args.directory)
    if not results:
        raise SystemExit(f"no results in {args.directory}/*.jsonl")
    print_tables(results)
    check_targets(results)
    if not args.no_chart:
        png = args.directory / "nimsync-bench.png"
        if chart(results, png):
            print(f"chart: {png}")


if __name__ == "__main__":
    main()

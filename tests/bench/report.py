"""The benchmarks' common table: every measure with its same-run baseline, its target and a verdict.

Each benchmark module builds `Row`s with `ratio_row` (a ratio to a baseline measured in the
same run) or `limit_row` (an absolute bound, e.g. a p99 or bytes per stream) and hands them
to `emit`, which prints them and, when `MEMSTACK_BENCH_REPORT` names a file, appends them
there as JSON lines. `python -m tests.bench.report FILE` prints the rows of a whole
`make bench` run as one table. Nothing here asserts: a missed target is reported, not raised.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import msgspec

REPORT_ENV = "MEMSTACK_BENCH_REPORT"


class Row(msgspec.Struct, frozen=True):
    goal: str  # which goal of the throughput targets, e.g. "1 accept"
    measure: str  # what was measured, in words
    result: str  # the measured value, formatted with its unit
    target: str  # e.g. ">= 0.50x GET /health" or "<= 25 ms"
    met: bool


def ratio_row(
    goal: str,
    measure: str,
    value: float,
    baseline: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    baseline_label: str = "baseline",
) -> Row:
    """value / baseline, checked against `minimum` (higher is better) or `maximum` (lower is)."""
    ratio = value / baseline if baseline else float("inf")
    if minimum is not None:
        target, met = f">= {minimum:.2f}x {baseline_label}", ratio >= minimum
    elif maximum is not None:
        target, met = f"<= {maximum:.2f}x {baseline_label}", ratio <= maximum
    else:
        target, met = f"(vs {baseline_label})", True
    result = f"{_number(value)}{unit} / {_number(baseline)}{unit} = {ratio:.2f}x"
    return Row(goal=goal, measure=measure, result=result, target=target, met=met)


def limit_row(
    goal: str,
    measure: str,
    value: float,
    *,
    unit: str,
    maximum: float | None = None,
    minimum: float | None = None,
) -> Row:
    """An absolute bound: `value` at most `maximum` (or at least `minimum`)."""
    if maximum is not None:
        target, met = f"<= {_number(maximum)} {unit}", value <= maximum
    elif minimum is not None:
        target, met = f">= {_number(minimum)} {unit}", value >= minimum
    else:
        target, met = "(reported)", True
    return Row(goal=goal, measure=measure, result=f"{_number(value)} {unit}", target=target, met=met)


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def format_table(rows: Iterable[Row]) -> str:
    rows = list(rows)
    header = ("goal", "measure", "result", "target", "met")
    cells = [(r.goal, r.measure, r.result, r.target, "yes" if r.met else "NO") for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def emit(rows: Iterable[Row]) -> None:
    """Print the rows, and append them to the run's report file if there is one."""
    rows = list(rows)
    print(format_table(rows), flush=True)
    report = os.environ.get(REPORT_ENV)
    if report:
        with Path(report).open("ab") as out:
            for row in rows:
                out.write(msgspec.json.encode(row) + b"\n")


def load(path: Path) -> list[Row]:
    decoder = msgspec.json.Decoder(Row)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.bench.report REPORT_FILE", file=sys.stderr)
        return 2
    rows = load(Path(argv[0]))
    print(format_table(rows))
    missed = sum(not r.met for r in rows)
    print(f"\n{len(rows) - missed} of {len(rows)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Reading samples out of a Prometheus text exposition."""

from __future__ import annotations

import re


def find_sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample, matched on the given labels (order-insensitive); None if absent."""
    for line in metrics.splitlines():
        if line.startswith(name + " ") and not labels:
            return float(line.rsplit(" ", 1)[1])
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{") : line.rindex("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def sample(metrics: str, name: str, **labels: str) -> float:
    value = find_sample(metrics, name, **labels)
    if value is None:
        raise KeyError(f"no sample {name}{labels}")
    return value

"""Where a benchmark phase's CPU went: the machine's busy cores and each part's share (Linux /proc).

A part is either a process tree (the API or a worker the benchmark started, by root pid: its
children count, and so do the reaped ones, through the root's `cutime`/`cstime`) or every process
of a server by command name (`java` is Neo4j, `postgres` each backend, `redis-server`). What the
machine spent beyond the named parts is "other": the benchmark's own clients and anything else
that shares the machine. Used to say what bounds a rate that does not scale (goal 6).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVERS = {"neo4j": "java", "postgres": "postgres", "redis": "redis-server"}


@dataclass(frozen=True, slots=True)
class _Process:
    ppid: int
    comm: str
    ticks: int  # utime + stime + cutime + cstime


def _processes() -> dict[int, _Process]:
    found: dict[int, _Process] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # comm is in parentheses and may hold spaces; the fields after it are space-separated
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        found[int(entry.name)] = _Process(int(rest[1]), comm, sum(int(v) for v in rest[11:15]))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks summed over every CPU since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def _tree_ticks(processes: Mapping[int, _Process], root: int) -> int:
    children: dict[int, list[int]] = {}
    for pid, process in processes.items():
        children.setdefault(process.ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid in processes:
            total += processes[pid].ticks
        stack.extend(children.get(pid, ()))
    return total


def _parts(roots: Mapping[str, int]) -> dict[str, int]:
    processes = _processes()
    ticks = {name: _tree_ticks(processes, pid) for name, pid in roots.items()}
    for name, comm in SERVERS.items():
        ticks[name] = sum(p.ticks for p in processes.values() if p.comm == comm)
    return ticks


@dataclass
class CpuUsage:
    """Cores used on average over the phase: the machine's, and each part's."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    seconds: float = 0.0  # wall time of the phase
    busy: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)

    def per_item_us(self, part: str, items: int) -> float:
        """Microseconds of `part`'s CPU per item done in the phase (a request, a delivered event)."""
        return self.parts[part] * self.seconds / max(1, items) * 1e6

    @property
    def other(self) -> float:
        return max(0.0, self.busy - sum(self.parts.values()))

    def describe(self) -> str:
        shares = ", ".join(f"{name} {value:.2f}" for name, value in self.parts.items())
        return f"{self.busy:.2f} of {self.cores} cores busy: {shares}, other {self.other:.2f}"


@contextmanager
def measure(roots: Mapping[str, int]) -> Iterator[CpuUsage]:
    """The CPU of the `with` block; `roots` names the process trees to account for (name -> pid)."""
    usage = CpuUsage()
    started = time.monotonic()
    busy_before, total_before = _machine_ticks()
    parts_before = _parts(roots)
    yield usage
    busy_after, total_after = _machine_ticks()
    parts_after = _parts(roots)
    usage.seconds = time.monotonic() - started
    # total ticks advance by cores x wall ticks, so dividing by them gives a fraction of the machine
    elapsed_ticks = max(1, total_after - total_before) / usage.cores
    usage.busy = (busy_after - busy_before) / elapsed_ticks
    usage.parts = {
        name: max(0, parts_after[name] - parts_before.get(name, 0)) / elapsed_ticks for name in parts_after
    }

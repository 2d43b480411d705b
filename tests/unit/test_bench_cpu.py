"""The benchmarks' CPU accounting counts a process tree's work, including children already reaped."""

from __future__ import annotations

import subprocess
import sys

from tests.bench import cpu

# Spawns a child that spins for 0.4 s of its own CPU time, reaps it, then waits for stdin to close:
# the child's time is then only in this process's cutime.
_PARENT = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "import time\\nwhile time.process_time() < 0.4: pass"], check=True)
print("reaped", flush=True)
sys.stdin.read()
"""


def test_a_reaped_childs_cpu_counts_for_its_tree() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        with cpu.measure({"tree": parent.pid}) as usage:
            assert parent.stdout is not None
            assert parent.stdout.readline() == "reaped\n"
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(timeout=10)
        assert parent.stdout is not None
        parent.stdout.close()
    spent = usage.parts["tree"] * usage.seconds
    assert spent >= 0.35, usage.describe()
    assert usage.parts["tree"] <= usage.busy + 0.05, usage.describe()
    assert set(usage.parts) == {"tree", *cpu.SERVERS}

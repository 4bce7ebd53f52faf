"""CPU time of a server process and its descendants, read from /proc (Linux).

The steadiest figure on a shared machine: the proxy's own utime + stime over a fixed number of
requests does not count time spent waiting for a core, unlike wall-clock latency.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads and all its living descendants."""
    total = 0
    for proc in _descendants(pid):
        try:
            # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS

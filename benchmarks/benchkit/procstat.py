"""Process-tree accounting from /proc: CPU time, resident memory and open file descriptors.

Parsing is split from reading so the parsers can be tested on captured text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class StatFields:
    """The fields of /proc/<pid>/stat we use; CPU times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int


def parse_stat(text: str) -> StatFields:
    """Parse one /proc/<pid>/stat line; the command name may hold spaces and parentheses."""
    close = text.rindex(")")
    pid = int(text[: text.index("(")].strip())
    # After "comm)": state(3) ppid(4) ... utime(14) stime(15); index 0 below is field 3.
    rest = text[close + 2 :].split()
    return StatFields(pid=pid, ppid=int(rest[1]), utime=int(rest[11]), stime=int(rest[12]))


def parse_vmrss_kb(status_text: str) -> int:
    """Return VmRSS in kB from /proc/<pid>/status text (0 for a zombie or kernel thread)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """Return ``root`` and every process below it, given a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo, seen = [], [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:  # pid reuse can make a loop in a racy snapshot
            continue
        seen.add(pid)
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return sorted(tree)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process exited between listing and reading


def snapshot_stats() -> dict[int, StatFields]:
    """Read /proc/<pid>/stat for every live process."""
    stats: dict[int, StatFields] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text:
                fields = parse_stat(text)
                stats[fields.pid] = fields
    return stats


def tree_pids(root: int) -> list[int]:
    """Return the pids of ``root``'s live process tree (empty when root is gone)."""
    stats = snapshot_stats()
    if root not in stats:
        return []
    return descendants(root, {pid: s.ppid for pid, s in stats.items()})


def cpu_ticks(stats: Mapping[int, StatFields], pids: Iterable[int]) -> int:
    """Sum utime+stime (clock ticks) over ``pids`` present in ``stats``."""
    return sum(stats[p].utime + stats[p].stime for p in pids if p in stats)


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user+system) used so far by the live processes of ``root``'s tree."""
    stats = snapshot_stats()
    if root not in stats:
        return 0.0
    pids = descendants(root, {pid: s.ppid for pid, s in stats.items()})
    return cpu_ticks(stats, pids) / CLK_TCK


def tree_rss_kb(root: int) -> int:
    """Sum of VmRSS (kB) over ``root``'s process tree."""
    total = 0
    for pid in tree_pids(root):
        text = _read(PROC / str(pid) / "status")
        total += parse_vmrss_kb(text) if text else 0
    return total


def tree_fds(root: int) -> int:
    """Count open file descriptors over ``root``'s process tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            total += len(os.listdir(PROC / str(pid) / "fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def cpu_per_request_us(cpu_before: float, cpu_after: float, requests: int) -> float | None:
    """CPU microseconds per request, or None when nothing was served."""
    if requests <= 0:
        return None
    return (cpu_after - cpu_before) * 1e6 / requests


def parse_system_busy_ticks(proc_stat: str) -> int:
    """Process and steal clock ticks over all cores from /proc/stat's ``cpu`` line.

    irq and softirq time are left out: under a loopback benchmark they are mostly our own
    network traffic, which no process is charged for. guest time is already in user time.
    """
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in line.split()[1:9])
            return user + nice + system + steal
    raise ValueError("no cpu line in /proc/stat")


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process, the kernel and steal)."""
    return parse_system_busy_ticks((PROC / "stat").read_text()) / CLK_TCK

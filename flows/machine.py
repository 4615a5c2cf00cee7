"""What this machine gives the pipeline: the memory this process may use, its cores, the free
disk under a folder. The DuckDB defaults (`flows.settings`, `flows.warehouse`) are derived
from them, so that the same code fits a 4 GB laptop and a 64 GB server without a setting.

Inside a container the machine's totals are not what the process may use: a cgroup limit
(v2 `memory.max`, `cpu.max`; v1 `memory.limit_in_bytes`, `cpu.cfs_quota_us`) is read first,
and the machine's `MemTotal` (and CPU affinity) only when no limit is set. Standard library
only; every reader takes its roots as arguments so tests can hand it a made-up machine.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 60  # a cgroup limit above this (v1 writes 2**63 - 4096) means none
# DuckDB's default share of that memory (Settings.duckdb_memory_share). Its limit covers its
# buffer manager only: the L daily run (1M accounts) peaked at the limit plus 0.7 GB (12.2 GB
# resident with a 12 GB limit), the M first run at the limit plus 1.1 GB (pandas frames,
# LightGBM, dbt). 40% of 24 GB (9.4 GiB) leaves the rest of the machine to them and the system.
DEFAULT_MEMORY_SHARE = 0.4


@dataclass(frozen=True)
class Memory:
    """The RAM this process may use, in bytes, and where the figure came from."""

    total: int
    source: str  # "cgroup v2 memory.max", "cgroup v1 memory.limit_in_bytes" or "MemTotal"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_paths(proc: Path) -> dict[str, str]:
    """controller -> this process's cgroup path (key "" for cgroup v2's unified line)."""
    out: dict[str, str] = {}
    for line in (_read(proc / "self" / "cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def _candidates(root: Path, own: str | None) -> list[Path]:
    """The process's own cgroup folder and its parents, then the mount root (inside a
    container the namespace root is the mount root)."""
    folders: list[Path] = []
    if own and own != "/":
        path = root / own.lstrip("/")
        while path != root and root in path.parents:
            folders.append(path)
            path = path.parent
    return [*folders, root]


def _tightest(files: list[Path]) -> int | None:
    limits = []
    for file in files:
        value = _read(file)
        if value and value.isdigit() and int(value) < UNLIMITED:
            limits.append(int(value))
    return min(limits) if limits else None


def _mem_total(proc: Path) -> int:
    for line in (_read(proc / "meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no MemTotal in {proc / 'meminfo'}")


def memory(proc: Path = PROC, cgroup: Path = CGROUP) -> Memory:
    """The RAM this process may use: the tightest cgroup limit on it, else MemTotal."""
    total = _mem_total(proc)
    paths = _cgroup_paths(proc)
    if "" in paths and (cgroup / "cgroup.controllers").exists():  # cgroup v2 (unified)
        limit = _tightest([d / "memory.max" for d in _candidates(cgroup, paths[""])])
        if limit is not None and limit < total:
            return Memory(limit, "cgroup v2 memory.max")
    if "memory" in paths:  # cgroup v1
        root = cgroup / "memory"
        limit = _tightest([d / "memory.limit_in_bytes" for d in _candidates(root, paths["memory"])])
        if limit is not None and limit < total:
            return Memory(limit, "cgroup v1 memory.limit_in_bytes")
    return Memory(total, "MemTotal")


def cores(proc: Path = PROC, cgroup: Path = CGROUP) -> int:
    """The cores this process may run on: its CPU affinity, bounded by a cgroup CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    paths = _cgroup_paths(proc)
    quotas: list[float] = []
    if "" in paths and (cgroup / "cgroup.controllers").exists():
        for folder in _candidates(cgroup, paths[""]):
            quota, _, period = (_read(folder / "cpu.max") or "max").partition(" ")
            if quota.isdigit() and period.isdigit() and int(period):
                quotas.append(int(quota) / int(period))
    for controller in ("cpu", "cpu,cpuacct"):
        if controller in paths:
            for folder in _candidates(cgroup / controller, paths[controller]):
                quota = _read(folder / "cpu.cfs_quota_us") or "-1"
                period = _read(folder / "cpu.cfs_period_us") or "0"
                if quota.isdigit() and period.isdigit() and int(period):
                    quotas.append(int(quota) / int(period))
    if quotas:
        count = min(count, max(1, math.ceil(min(quotas))))
    return max(1, count)


def free_disk(folder: Path) -> int:
    """Free bytes on the file system `folder` is (or will be) on: its nearest existing
    ancestor's."""
    path = folder.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@cache
def machine_memory() -> Memory:
    """`memory()` of this machine, read once per process (it does not change while it runs)."""
    return memory()


@cache
def machine_cores() -> int:
    """`cores()` of this machine, read once per process."""
    return cores()


def mib(size: int) -> str:
    """A byte count as DuckDB reads it, in whole MiB (`9641MiB`)."""
    return f"{max(1, size // 2**20)}MiB"


def gib(size: int) -> str:
    """A byte count for people (`23.5 GiB`)."""
    return f"{size / 2**30:.1f} GiB"

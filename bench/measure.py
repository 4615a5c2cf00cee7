"""What a benchmark measures about a piece of work, on Linux, with the standard library only.

* wall time: `time.perf_counter`;
* CPU time: user + system of this process and of its waited-for children
  (`resource.getrusage` RUSAGE_SELF + RUSAGE_CHILDREN), so DuckDB's, LightGBM's and dbt's
  threads all count;
* peak memory: the kernel's own high-water mark of this process's resident set (`VmHWM` in
  `/proc/self/status`), reset before each stage by writing 5 to `/proc/self/clear_refs`, so
  every stage gets its own exact peak without sampling. Where the kernel refuses the reset,
  a 50 ms sampling thread is used instead (`peak_method` says which). For a child process
  tree (the Prefect run), `TreeSampler` sums the RSS of the tree every 50 ms.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def _status_kb(key: str, pid: str = "self") -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def rss_mb(pid: str = "self") -> float:
    return _status_kb("VmRSS", pid) / 1024


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _Sampler(threading.Thread):
    """Max of `probe()` every `interval` seconds until stopped."""

    def __init__(self, probe: Any, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.probe, self.interval = probe, interval
        self.peak = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.probe())
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.probe())
        return self.peak


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(x) for x in task.read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_mb(root: int) -> float:
    """Resident set of `root` and all its descendants, MB."""
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss_mb(str(pid))
        todo += _children(pid)
    return total


class TreeSampler(_Sampler):
    """Peak summed RSS of a process tree (e.g. `expansion run` and Prefect's server)."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(lambda: tree_rss_mb(root), interval)


@dataclass
class Measurement:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_start_mb: float = 0.0
    peak_method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "rss_start_mb": round(self.rss_start_mb, 1),
            "peak_method": self.peak_method,
        }


@contextmanager
def measure() -> Iterator[Measurement]:
    """Wall, CPU and peak RSS of the block (this process and its children)."""
    m = Measurement(rss_start_mb=rss_mb())
    exact = _reset_hwm()
    sampler = None
    if not exact:
        sampler = _Sampler(rss_mb)
        sampler.start()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    try:
        yield m
    finally:
        m.wall_s = time.perf_counter() - t0
        m.cpu_s = cpu_seconds() - cpu0
        if sampler is not None:
            m.peak_rss_mb, m.peak_method = sampler.stop(), "sampled-50ms"
        else:
            m.peak_rss_mb, m.peak_method = _status_kb("VmHWM") / 1024, "VmHWM"


# --- machine facts ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in (
        "duckdb",
        "lightgbm",
        "prefect",
        "dbt-core",
        "dbt-duckdb",
        "great-expectations",
        "pandas",
        "pyarrow",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def machine_facts() -> dict[str, Any]:
    mem_kb = _status_kb("MemTotal") or 0
    try:
        meminfo = Path("/proc/meminfo").read_text()
        m = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
        mem_kb = int(m.group(1)) if m else mem_kb
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "versions": _versions(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]

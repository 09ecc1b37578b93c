"""How many threads a run computes on: the physical cores this process may use, and whether the
machine is busy. One rule for ``train``, ``eval`` and ``demo`` (``edgecnn.cli.threads`` is their
``--threads`` option); torch-free (the torch side is two calls, made in :func:`apply_torch`).

- **Cores**: the physical cores among the CPUs this process may run on (``sched_getaffinity``),
  counted from ``/sys/devices/system/cpu/cpuN/topology`` (two hyper-threads of one core count once),
  and no more than a cgroup CPU quota allows (a container limited to 1.5 CPUs gets 2). Falls back to
  the logical count where sysfs is absent.
- **Default threads**: the cores, minus one per DataLoader worker process (``workers + threads <=
  cores``, at least 1 thread); on a **busy** machine (1-minute load average above the cores at
  start, and as many other tasks runnable at that moment: other jobs fill the cores) 1 thread.
  Measured in ``benchmarks/train_threads.py``: under load, torch's threads wait for each other at
  every layer while the scheduler hands their cores to other jobs, and 1 thread trains 4-14x
  faster than 2 on a busy 2-core machine.
- An explicit ``--threads N`` (or ``$EDGECNN_THREADS``) is always used as given; on a busy machine the
  run says so in one line.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SYS_CPU = Path("/sys/devices/system/cpu")
CGROUP = Path("/sys/fs/cgroup")
LOADAVG = Path("/proc/loadavg")


def allowed_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int] | None = None, sysfs: Path = SYS_CPU) -> int:
    """Distinct (package, core) pairs among ``cpus`` (default: :func:`allowed_cpus`), read from sysfs
    topology; ``len(cpus)`` where the topology cannot be read."""
    cpus = allowed_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs' worth of time a cgroup quota allows this process (cgroup v2 ``cpu.max``, or v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


@lru_cache(maxsize=1)
def available_cores() -> int:
    """Physical cores this process may compute on: affinity, topology and cgroup quota together."""
    cores = physical_cores()
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


THREADS_ENV = "EDGECNN_THREADS"  # a --threads for every run that does not give one (a shell, CI, the tests)


def load_average() -> float | None:
    """The 1-minute load average (runnable tasks, averaged), or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def runnable_others(samples: int = 5, interval_s: float = 0.01, path: Path = LOADAVG) -> int | None:
    """Tasks runnable right now besides this process (the 4th field of /proc/loadavg, less one), the
    median of ``samples`` readings; None where the file is missing. The load average trails the
    machine by about a minute (a run that just ended still counts); this says whether others are
    still there."""
    counts = []
    for i in range(samples):
        try:
            counts.append(int(path.read_text().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval_s)
    return int(statistics.median(counts))


def is_busy(load: float | None, others: int | None, cores: int) -> bool:
    """Other jobs hold the cores: the 1-minute load average is above them and, where it can be
    read, at least as many other tasks are runnable right now."""
    return load is not None and load > cores and (others is None or others >= cores)


@dataclass(frozen=True)
class Threads:
    """What a run computes on: ``n`` threads (``explicit``: the user's ``--threads``) of ``cores``,
    with the load average and the other runnable tasks seen at start."""

    n: int
    cores: int
    load: float | None
    explicit: bool
    others: int | None = None

    @property
    def busy(self) -> bool:
        return is_busy(self.load, self.others, self.cores)

    def note(self) -> str | None:
        """The one line a run prints on stderr when the machine is busy at start, else None."""
        if not self.busy:
            return None
        where = f"load average {self.load:.1f} on {self.cores} core{'s' if self.cores > 1 else ''}"
        if self.explicit:
            if self.n == 1:
                return None  # already what the line would suggest
            return f"the machine is busy ({where}); running {self.n} threads as asked, though --threads 1 is " \
                   "usually faster while other jobs hold the cores"
        if self.cores == 1:
            return None
        return f"the machine is busy ({where}): running 1 thread, as --threads 1 (faster than {self.cores} while " \
               "other jobs hold the cores); --threads N to choose"


def resolve(threads: int | None = None, *, workers: int = 0, cores: int | None = None,
            load: float | None = None, others: int | None = None) -> Threads:
    """The thread count of a run: ``threads`` when given (>= 1), else ``$EDGECNN_THREADS``, else the
    cores minus ``workers`` (DataLoader processes), or 1 on a busy machine. ``cores`` and ``load``
    ``others`` default to this machine's (:func:`available_cores`, :func:`load_average`,
    :func:`runnable_others`; tests inject them)."""
    from edgecnn.errors import UsageError

    if threads is None and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise UsageError(f"${THREADS_ENV} must be a whole number of threads, got '{os.environ[THREADS_ENV]}'") \
                from None
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    cores = available_cores() if cores is None else cores
    load = load_average() if load is None else load
    if others is None and load is not None and load > cores:  # sampled (40 ms) only when the load says busy
        others = runnable_others()
    plan = Threads(threads or 1, cores, load, threads is not None, others)
    if threads is None:
        plan = Threads(1 if plan.busy else max(1, cores - workers), cores, load, False, others)
    return plan


def check_fit(plan: Threads, workers: int) -> None:
    """Threads and DataLoader worker processes (each decodes on a core of its own) must fit the
    cores: ``threads + workers <= cores``; a one-line UsageError otherwise."""
    from edgecnn.errors import UsageError

    if plan.n + workers <= plan.cores:
        return
    if plan.explicit:
        raise UsageError(f"--threads {plan.n} with --workers {workers} needs {plan.n + workers} cores and this "
                         f"process has {plan.cores}; lower one (threads + workers <= cores)")
    raise UsageError(f"--workers {workers} leaves no core for training: this process has {plan.cores}; use "
                     f"--workers {plan.cores - 1} or fewer (threads + workers <= cores)")


def apply_torch(n: int) -> None:
    """Set torch's intra-op pool to ``n`` threads and its inter-op pool to 1 (a CNN's layers run one
    after another; the inter-op pool only adds threads). The inter-op size can be set once per process,
    before any parallel work: later calls keep what is there."""
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started: it stays as it is
        pass

"""edgecnn.threads: physical cores from sysfs topology, cgroup quotas, the default thread count, the
busy-machine line and the threads + workers rule. Torch-free; loads and topologies are injected."""

from __future__ import annotations

import pytest

from edgecnn import threads
from edgecnn.errors import UsageError


def _topology(root, cores: list[tuple[int, int]]):
    """A fake /sys/devices/system/cpu: logical CPU i sits on (package, core) cores[i]."""
    for cpu, (package, core) in enumerate(cores):
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    return root


def test_physical_cores_count_hyperthreads_once(tmp_path):
    # 2 packages x 2 cores x 2 hyper-threads = 8 logical CPUs, 4 physical cores
    sysfs = _topology(tmp_path, [(p, c) for _ in range(2) for p in range(2) for c in range(2)])
    assert threads.physical_cores(list(range(8)), sysfs) == 4
    # an affinity mask holding both siblings of one core and one of another: 2 cores
    assert threads.physical_cores([0, 4, 1], sysfs) == 2


def test_physical_cores_fall_back_to_the_logical_count(tmp_path):
    assert threads.physical_cores([0, 1, 2], tmp_path / "no-sysfs") == 3


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cpu_quota(tmp_path) == quota


def test_default_is_the_cores_minus_the_workers(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.resolve(None, cores=4, load=0.5).n == 4
    assert threads.resolve(None, workers=1, cores=4, load=0.5).n == 3
    assert threads.resolve(None, workers=6, cores=4, load=0.5).n == 1
    monkeypatch.setattr(threads, "load_average", lambda: None)  # an OS without a load average: not busy
    assert threads.resolve(None, cores=4).n == 4


def test_a_busy_machine_gets_one_thread_and_one_line(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    plan = threads.resolve(None, cores=2, load=3.4, others=3)
    assert (plan.n, plan.busy, plan.explicit) == (1, True, False)
    assert plan.note() == ("the machine is busy (load average 3.4 on 2 cores): running 1 thread, as --threads 1 "
                           "(faster than 2 while other jobs hold the cores); --threads N to choose")
    assert threads.resolve(None, cores=2, load=2.0).note() is None  # at the cores: not above them
    assert threads.resolve(None, cores=2, load=2.0).n == 2


def test_a_load_average_left_by_a_run_that_just_ended_is_not_busy(monkeypatch):
    """The 1-minute average trails by a minute: above the cores, but nothing else runnable now."""
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    plan = threads.resolve(None, cores=2, load=2.3, others=0)
    assert (plan.n, plan.busy, plan.note()) == (2, False, None)
    assert threads.resolve(None, cores=2, load=2.3, others=2).n == 1


def test_runnable_others_reads_proc_loadavg(tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("12.31 13.02 11.87 7/412 98765\n")
    assert threads.runnable_others(samples=3, interval_s=0, path=f) == 6  # less this process
    assert threads.runnable_others(path=tmp_path / "none") is None


def test_an_explicit_choice_is_kept_and_the_busy_line_suggests_one_thread(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    plan = threads.resolve(2, cores=2, load=7.25, others=6)
    assert (plan.n, plan.explicit) == (2, True)
    assert plan.note() == ("the machine is busy (load average 7.2 on 2 cores); running 2 threads as asked, though "
                           "--threads 1 is usually faster while other jobs hold the cores")
    assert threads.resolve(1, cores=2, load=7.25, others=6).note() is None  # already one thread: nothing to suggest
    assert threads.resolve(3, cores=2, load=0.1).n == 3  # more than the cores when asked for
    with pytest.raises(UsageError, match="^--threads must be >= 1, got 0$"):
        threads.resolve(0)


def test_environment_variable_is_a_default_threads(monkeypatch):
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.resolve(None, cores=8, load=0.0) == threads.Threads(3, 8, 0.0, True, None)
    assert threads.resolve(2, cores=8, load=0.0).n == 2  # the option wins
    monkeypatch.setenv(threads.THREADS_ENV, "two")
    with pytest.raises(UsageError, match=r"^\$EDGECNN_THREADS must be a whole number of threads, got 'two'$"):
        threads.resolve(None)


def test_threads_and_workers_never_oversubscribe_the_cores(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    threads.check_fit(threads.resolve(1, cores=2, load=0), workers=1)
    threads.check_fit(threads.resolve(None, workers=1, cores=2, load=0), workers=1)
    with pytest.raises(UsageError) as e:
        threads.check_fit(threads.resolve(2, cores=2, load=0), workers=1)
    assert str(e.value) == ("--threads 2 with --workers 1 needs 3 cores and this process has 2; lower one "
                            "(threads + workers <= cores)")
    with pytest.raises(UsageError) as e:
        threads.check_fit(threads.resolve(None, workers=2, cores=2, load=0), workers=2)
    assert str(e.value) == ("--workers 2 leaves no core for training: this process has 2; use --workers 1 or "
                            "fewer (threads + workers <= cores)")


def test_this_machine_has_at_least_one_core():
    assert 1 <= threads.available_cores() <= len(threads.allowed_cpus())

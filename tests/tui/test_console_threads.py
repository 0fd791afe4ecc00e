"""The console's torch threads: the cores the process may use (affinity, cgroup quota) less one for the interface."""

from __future__ import annotations

import pytest

import engine.device as dev
from tui.runner import console_threads


@pytest.mark.parametrize(
    "cpus, limit, threads",
    [
        (8, None, 7),  # one core left to the interface
        (64, 2.0, 1),  # a container given 2 of 64 cores: not 63 threads throttled by the quota
        (64, 4.5, 4),  # 5 cores' worth of time to run on, one of them the interface's
        (4, None, 3),
        (1, None, 1),  # never fewer than one
        (16, 1.0, 1),
    ],
)
def test_the_console_leaves_a_core_of_those_it_may_use_to_the_interface(monkeypatch, cpus, limit, threads):
    monkeypatch.setattr(dev, "_allowed_cpus", lambda: set(range(cpus)))
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: limit)
    assert console_threads() == threads
    assert console_threads(requested=5) == 5  # device.threads chosen by the user: as asked

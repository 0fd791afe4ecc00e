"""The cores a process may use: its affinity within its cgroup's CPU quota (engine.device.usable_cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.device as dev


def _cgroup(tmp_path: Path, own: str, files: dict[str, str]) -> tuple[str, str]:
    """A fake /sys/fs/cgroup holding `files` and a /proc/self/cgroup reading `own`: (root, own file)."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self-cgroup").write_text(own)
    return str(root), str(tmp_path / "self-cgroup")


@pytest.mark.parametrize(
    "own, files, limit",
    [
        ("0::/\n", {"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2 in a container: its own cgroup at the root
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),
        ("0::/user.slice/job\n", {"user.slice/job/cpu.max": "50000 100000\n", "cpu.max": "max 100000"}, 0.5),
        ("0::/elsewhere\n", {"cpu.max": "300000 100000\n"}, 3.0),  # own cgroup not mounted here: the root's
        ("4:cpu,cpuacct:/docker/x\n0::/\n", {"cpu/docker/x/cpu.cfs_quota_us": "250000\n",
                                              "cpu/docker/x/cpu.cfs_period_us": "100000\n"}, 2.5),  # v1
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ("0::/\n", {}, None),  # no cpu controller: no limit
        ("0::/\n", {"cpu.max": "garbage\n"}, None),
        ("0::/\n", {"cpu.max": "100000 0\n"}, None),
    ],
)
def test_the_cgroup_cpu_limit_is_read_from_v2_or_v1(tmp_path, own, files, limit):
    root, own_file = _cgroup(tmp_path, own, files)
    assert dev.cgroup_cpu_limit(root, own_file) == limit


def test_no_cgroup_files_at_all_mean_no_limit(tmp_path):
    assert dev.cgroup_cpu_limit(str(tmp_path / "absent"), str(tmp_path / "absent-too")) is None


@pytest.mark.parametrize(
    "cpus, limit, usable",
    [
        (8, None, 8),  # affinity alone
        (8, 2.0, 2),  # a container's --cpus=2 on an 8-core machine
        (8, 2.5, 3),  # a share of a core is a core to run on
        (2, 6.0, 2),  # a quota above the affinity: the affinity
        (4, 0.2, 1),  # never fewer than one
    ],
)
def test_usable_cores_are_the_affinity_within_the_quota(monkeypatch, cpus, limit, usable):
    monkeypatch.setattr(dev, "_allowed_cpus", lambda: set(range(cpus)))
    monkeypatch.setattr(dev, "cgroup_cpu_limit", lambda: limit)
    assert dev.usable_cores() == usable


def test_this_machine_s_usable_cores_are_within_its_affinity():
    import os

    assert 1 <= dev.usable_cores() <= len(os.sched_getaffinity(0))

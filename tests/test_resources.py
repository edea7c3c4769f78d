"""resources: GPUs from nvidia-smi and CUDA_VISIBLE_DEVICES, CPUs from affinity and cgroup quota.

There is no NVIDIA driver on the test hosts, so nvidia-smi is faked with a small shell script put
first on PATH; everything else (affinity, the cgroup files' format) is real.
"""

import os
import subprocess
import sys

import pytest
from conftest import install_fake_nvidia_smi

from sagemaker_mxnet_container import resources
from sagemaker_mxnet_container.resources import cgroup_cpu_limit, count_cpus, count_gpus

FOUR_GPUS = "\n".join(f"GPU {index}: NVIDIA H100 80GB HBM3 (UUID: GPU-0000000{index}-aaaa)" for index in range(4))


@pytest.fixture
def four_gpus(tmp_path, monkeypatch):
    install_fake_nvidia_smi(tmp_path, monkeypatch, stdout=FOUR_GPUS)


# --- GPUs -------------------------------------------------------------------------------------


def test_every_gpu_nvidia_smi_lists_is_counted_when_cuda_visible_devices_is_unset(four_gpus):
    assert count_gpus({}) == 4


@pytest.mark.parametrize(
    ("visible", "gpus"),
    [
        ("", 0),
        ("-1", 0),
        ("0,1", 2),
        ("0,-1,1", 1),
        ("2", 1),
        (" 0 , 3 ", 2),
        ("GPU-00000001-aaaa,GPU-00000002-aaaa", 2),
        ("NoDevFiles", 0),
        ("0,1,2,3,4,5,6,7", 4),
    ],
)
def test_cuda_visible_devices_narrows_the_count(four_gpus, visible, gpus):
    assert count_gpus({"CUDA_VISIBLE_DEVICES": visible}) == gpus


def test_lines_other_than_gpu_lines_are_not_counted(tmp_path, monkeypatch):
    listing = FOUR_GPUS.splitlines()[0] + "\n  MIG 3g.40gb     Device  0: (UUID: MIG-1234)\nNo devices found."
    install_fake_nvidia_smi(tmp_path, monkeypatch, stdout=listing)

    assert count_gpus({}) == 1


def test_nvidia_smi_that_fails_means_no_gpus(tmp_path, monkeypatch):
    # What nvidia-smi does on a host with CUDA libraries but no driver loaded.
    install_fake_nvidia_smi(tmp_path, monkeypatch, stdout=FOUR_GPUS, exit_code=9)

    assert count_gpus({}) == 0
    assert count_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == 0


def test_no_nvidia_smi_on_path_means_no_gpus(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    assert count_gpus({}) == 0
    assert count_gpus({"CUDA_VISIBLE_DEVICES": "0"}) == 0


def test_detect_reads_the_process_environment(four_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")

    found = resources.detect()

    assert found.num_gpus == 2
    assert found.num_cpus >= 1


# --- CPUs -------------------------------------------------------------------------------------


@pytest.fixture
def cgroup_root(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    return root


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_cpu_count_follows_the_affinity_mask(cgroup_root):
    # taskset is the real mechanism (docker --cpuset-cpus sets the same mask), so run under it.
    code = f"from sagemaker_mxnet_container.resources import count_cpus; print(count_cpus({str(cgroup_root)!r}))"
    result = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )

    assert result.stdout.strip() == "1"


def test_without_a_cgroup_quota_the_affinity_mask_counts(cgroup_root):
    assert cgroup_cpu_limit(str(cgroup_root)) is None
    assert count_cpus(str(cgroup_root)) == affinity()


def test_a_cgroup_v2_quota_is_rounded_up_to_whole_cpus(cgroup_root):
    (cgroup_root / "cpu.max").write_text("150000 100000\n")

    assert cgroup_cpu_limit(str(cgroup_root)) == 1.5
    # min() because a host with a single CPU in its mask cannot have two.
    assert count_cpus(str(cgroup_root)) == min(2, affinity())


def test_a_cgroup_v2_quota_below_the_affinity_mask_caps_the_count(cgroup_root):
    (cgroup_root / "cpu.max").write_text("50000 100000\n")

    assert count_cpus(str(cgroup_root)) == 1


def test_a_cgroup_v2_quota_above_the_affinity_mask_does_not_raise_the_count(cgroup_root):
    (cgroup_root / "cpu.max").write_text(f"{(affinity() + 8) * 100000} 100000\n")

    assert count_cpus(str(cgroup_root)) == affinity()


def test_cgroup_v2_max_means_no_quota_even_if_v1_files_exist(cgroup_root):
    (cgroup_root / "cpu.max").write_text("max 100000\n")
    (cgroup_root / "cpu").mkdir()
    (cgroup_root / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (cgroup_root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")

    assert cgroup_cpu_limit(str(cgroup_root)) is None
    assert count_cpus(str(cgroup_root)) == affinity()


def write_v1(root, quota: str, period: str = "100000") -> None:
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period + "\n")


def test_a_cgroup_v1_quota_caps_the_count(cgroup_root):
    write_v1(cgroup_root, "50000")

    assert cgroup_cpu_limit(str(cgroup_root)) == 0.5
    assert count_cpus(str(cgroup_root)) == 1


def test_a_cgroup_v1_quota_of_minus_one_means_no_quota(cgroup_root):
    write_v1(cgroup_root, "-1")

    assert cgroup_cpu_limit(str(cgroup_root)) is None
    assert count_cpus(str(cgroup_root)) == affinity()


@pytest.mark.parametrize("content", ["", "garbage", "100000"])
def test_an_unreadable_cgroup_v2_file_falls_back_to_v1(cgroup_root, content):
    (cgroup_root / "cpu.max").write_text(content)
    write_v1(cgroup_root, "250000")

    assert cgroup_cpu_limit(str(cgroup_root)) == 2.5


@pytest.mark.parametrize("content", ["150000 0", "0 0"])
def test_a_zero_cgroup_period_is_ignored_rather_than_crashing(cgroup_root, content):
    (cgroup_root / "cpu.max").write_text(content)

    assert cgroup_cpu_limit(str(cgroup_root)) is None
    assert count_cpus(str(cgroup_root)) == affinity()

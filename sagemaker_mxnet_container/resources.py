"""What this host can compute with, detected once per job."""

import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    num_gpus: int
    num_cpus: int


def count_gpus(environ: Mapping[str, str] = os.environ) -> int:
    """GPUs the user's process may use: nvidia-smi's list, narrowed by CUDA_VISIBLE_DEVICES."""
    listed = _nvidia_smi_gpus()
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return listed
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    # CUDA stops at the first invalid entry ("-1" is the conventional way to hide every GPU).
    usable = 0
    for entry in entries:
        if entry.startswith("-") or entry == "NoDevFiles":
            break
        usable += 1
    return min(usable, listed)


def _nvidia_smi_gpus() -> int:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return 0
    try:
        listing = subprocess.run([executable, "--list-gpus"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("nvidia-smi could not run (%s); training on CPU", error)
        return 0
    if listing.returncode != 0:
        # nvidia-smi without a loaded driver exits non-zero: a CPU host with CUDA libraries.
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> Optional[float]:
    """The CPU quota of this process's cgroup in CPUs, or None where there is none."""
    try:
        with open(os.path.join(root, "cpu.max")) as stream:
            quota, period = stream.read().split()[:2]
        if quota == "max":
            return None
        quota_us, period_us = int(quota), int(period)
    except (OSError, ValueError):
        pass
    else:
        # The kernel never writes a zero period, but a division by it must not fail the job.
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as stream:
            quota_us = int(stream.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as stream:
            period_us = int(stream.read())
    except (OSError, ValueError):
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def count_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may run on: its affinity set, capped by a cgroup quota."""
    cpus = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def detect() -> Resources:
    resources = Resources(num_gpus=count_gpus(), num_cpus=count_cpus())
    logger.info("Resources: %d GPU(s), %d CPU(s)", resources.num_gpus, resources.num_cpus)
    return resources

"""Hosts of our own on one machine: a network namespace per host, joined by a bridge.

Each host gets its own address on a private test subnet (198.18.0.0/15, the range set aside for
network testing) and its own /etc/hosts (``ip netns exec`` mounts /etc/netns/<ns>/hosts over it),
so host names resolve per host as the platform's DNS resolves them. The bridge's address in the
root namespace serves the test's S3. Nothing here reaches beyond this machine.
"""

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

_counter = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable_reason() -> Optional[str]:
    """Why namespaces cannot be made here, or None; installs iproute2 when it is missing."""
    if os.geteuid() != 0:
        return "network namespaces need root, and these tests are not running as root"
    if shutil.which("ip") is None:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "iproute2"], capture_output=True)
        if shutil.which("ip") is None:
            return "the ip command (iproute2) is missing and could not be installed"
    probe = f"smxprobe{os.getpid()}"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Network:
    """``hosts`` named algo-1 … algo-N, each in a namespace of its own."""

    def __init__(self, count: int):
        serial = next(_counter)
        # Interface names hold at most 15 characters, and the kernel may still be deleting the last
        # network's veths when the next one is made: every network gets names of its own.
        tag = secrets.token_hex(3)
        self.subnet = 18 + (os.getpid() + serial) % 2, (os.getpid() // 2 + serial * 37) % 250 + 1
        self.bridge = f"smxbr{tag}"
        self.bridge_address = self._address(1)
        self.hosts = [f"algo-{index}" for index in range(1, count + 1)]
        self.namespaces = {host: f"smx{tag}-{index}" for index, host in enumerate(self.hosts, 1)}
        self.addresses = {host: self._address(10 + index) for index, host in enumerate(self.hosts, 1)}
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _address(self, last: int) -> str:
        return f"198.{self.subnet[0]}.{self.subnet[1]}.{last}"

    def _up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, host in enumerate(self.hosts, 1):
            namespace = self.namespaces[host]
            outside = f"{self.bridge}v{index}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "smxtmp", "netns", namespace)
            _ip("-n", namespace, "link", "set", "smxtmp", "name", "eth0")
            _ip("-n", namespace, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            self.write_hosts_file(host, self.addresses)

    def write_hosts_file(self, host: str, addresses: Mapping[str, str]) -> None:
        """What ``host`` resolves: ``addresses`` and localhost, nothing else."""
        directory = Path("/etc/netns") / self.namespaces[host]
        directory.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost"] + [f"{address} {name}" for name, address in addresses.items()]
        (directory / "hosts").write_text("\n".join(lines) + "\n")

    def command(self, host: str, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def start(self, host: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as stream:
            return subprocess.Popen(
                self.command(host, argv),
                env=dict(env),
                stdout=stream,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def pids(self, host: str) -> List[int]:
        result = _ip("netns", "pids", self.namespaces[host], check=False)
        return [int(pid) for pid in result.stdout.split()]

    def signal_host(self, host: str, signum: int) -> None:
        """Sends ``signum`` to every process of the host, as if its instance failed."""
        for pid in self.pids(host):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def kill_host(self, host: str) -> None:
        self.signal_host(host, signal.SIGKILL)

    def cut(self, host: str) -> None:
        """Cuts the host off the network, its processes alive: its bridge port goes down, so
        nothing it sends arrives and nothing sent to it, and no connection is closed or reset."""
        index = self.hosts.index(host) + 1
        _ip("link", "set", f"{self.bridge}v{index}", "down")

    def down(self) -> None:
        for host, namespace in self.namespaces.items():
            for _ in range(50):
                pids = self.pids(host)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGCONT)
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            _ip("netns", "del", namespace, check=False)
            shutil.rmtree(Path("/etc/netns") / namespace, ignore_errors=True)
        _ip("link", "del", self.bridge, check=False)


def train_argv() -> List[str]:
    return [sys.executable, "-m", "sagemaker_mxnet_container"]


def wait_all(processes: Dict[str, subprocess.Popen], timeout: float) -> Dict[str, Optional[int]]:
    """Exit codes by host; None for a host still running after ``timeout`` (a hang)."""
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    return {host: process.poll() for host, process in processes.items()}

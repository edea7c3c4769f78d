"""``train-local``: a whole multi-host job on one workstation, without Docker or root.

Each host is the real ``train`` in a process tree of its own, with its own ``/opt/ml`` tree under
the job directory; every host name resolves to loopback (through SAGEMAKER_MXNET_HOST_ADDRESSES,
which the entry point reads instead of DNS). Like the SDK's local mode, the first host's
``model/`` and ``output/`` end up as ``model.tar.gz`` and ``output.tar.gz``.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from typing import Dict, List, Mapping, Optional, Sequence

from sagemaker_mxnet_container import settings
from sagemaker_mxnet_container.environment import BASE_DIR_VARIABLE
from sagemaker_mxnet_container.metrics.report import CSV_NAME, PNG_NAME

LOOPBACK = "127.0.0.1"


def host_names(count: int) -> List[str]:
    return [f"algo-{index}" for index in range(1, count + 1)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def lay_out(
    job_dir: str,
    hosts: Sequence[str],
    hyperparameters: Mapping[str, object],
    channels: Mapping[str, str],
) -> Dict[str, str]:
    """Writes each host's ``/opt/ml`` tree; returns host name → its base directory."""
    bases = {}
    for host in hosts:
        base = os.path.join(job_dir, host)
        config = os.path.join(base, "input", "config")
        data = os.path.join(base, "input", "data")
        os.makedirs(config, exist_ok=True)
        os.makedirs(data, exist_ok=True)
        # The platform sends every value JSON-encoded in a string.
        encoded = {name: json.dumps(value) for name, value in hyperparameters.items()}
        _write_json(os.path.join(config, "hyperparameters.json"), encoded)
        _write_json(
            os.path.join(config, "resourceconfig.json"),
            {"current_host": host, "hosts": list(hosts), "network_interface_name": "eth0"},
        )
        _write_json(
            os.path.join(config, "inputdataconfig.json"),
            {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels},
        )
        for name, directory in channels.items():
            link = os.path.join(data, name)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(os.path.abspath(directory), link)
        bases[host] = base
    return bases


def _write_json(path: str, content: object) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(content, stream, indent=2)


class _Host:
    def __init__(self, name: str, process: subprocess.Popen, width: int):
        self.name = name
        self.process = process
        self.ended_at: Optional[float] = None
        self._prefix = f"{name:<{width}} | ".encode()
        self._thread = threading.Thread(target=self._copy_output, daemon=True)
        self._thread.start()

    def _copy_output(self) -> None:
        for line in self.process.stdout:
            sys.stdout.buffer.write(self._prefix + line)
            sys.stdout.buffer.flush()

    def join_output(self) -> None:
        self._thread.join(5.0)


def run_hosts(bases: Mapping[str, str], environ: Optional[Mapping[str, str]] = None) -> Dict[str, int]:
    """Runs ``train`` for every host at once, output prefixed with the host's name; returns exit codes.

    SIGINT and SIGTERM are passed on to every host, as the platform stops every instance.
    """
    environ = dict(os.environ if environ is None else environ)
    environ[settings.variable("host_addresses").name] = json.dumps({host: LOOPBACK for host in bases})
    width = max(len(host) for host in bases)
    hosts: List[_Host] = []

    def stop(signum, _frame):
        for host in hosts:
            if host.process.poll() is None:
                host.process.send_signal(signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, base in bases.items():
            process = subprocess.Popen(
                [sys.executable, "-m", "sagemaker_mxnet_container"],
                env={**environ, BASE_DIR_VARIABLE: base},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            hosts.append(_Host(name, process, width))
        running = list(hosts)
        while running:
            for host in list(running):
                if host.process.poll() is not None:
                    host.ended_at = time.monotonic()
                    running.remove(host)
            time.sleep(0.05)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for host in hosts:
            if host.process.poll() is None:
                host.process.kill()
                host.process.wait()
            host.join_output()
    order = sorted(hosts, key=lambda host: host.ended_at or 0.0)
    return {host.name: host.process.returncode for host in order}


def collect(base: str, job_dir: str) -> List[str]:
    """The first host's model/ and output/ as the SDK's local mode leaves them."""
    archives = []
    for name in ("model", "output"):
        source = os.path.join(base, name)
        archive = os.path.join(job_dir, f"{name}.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            if os.path.isdir(source):
                for entry in sorted(os.listdir(source)):
                    tar.add(os.path.join(source, entry), arcname=entry)
        archives.append(archive)
    return archives


def _hyperparameter(text: str):
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _channel(text: str):
    name, separator, directory = text.partition("=")
    if not separator or not name or not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"expected NAME=DIRECTORY with an existing directory, got {text!r}")
    return name, directory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="train-local",
        description="Run a SageMaker MXNet training job on this machine as N hosts, each the real `train`.",
    )
    parser.add_argument("--hosts", type=int, default=2, help="number of hosts, named algo-1 … algo-N (default 2)")
    parser.add_argument("--source-dir", required=True, help="the code: a directory, a .tar.gz, or an s3:// URI")
    parser.add_argument("--entry-point", required=True, help="the program, relative to the source directory")
    parser.add_argument(
        "--channel", type=_channel, action="append", default=[], metavar="NAME=DIR", help="a data channel"
    )
    parser.add_argument(
        "--hyperparameter",
        "-p",
        type=_hyperparameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter; VALUE is read as JSON when it parses, else as a string",
    )
    parser.add_argument("--job-dir", default="local-job", help="where the hosts' trees and the archives go")
    args = parser.parse_args(argv)
    if args.hosts < 1:
        parser.error("--hosts must be at least 1")

    source = args.source_dir if "://" in args.source_dir else os.path.abspath(args.source_dir)
    hyperparameters = {
        "sagemaker_program": args.entry_point,
        "sagemaker_submit_directory": source,
        # Several local jobs at once must not meet on the same ports.
        "sagemaker_parameter_server_port": free_port(),
        "sagemaker_liveness_port": free_port(),
        **dict(args.hyperparameter),
    }
    job_dir = os.path.abspath(args.job_dir)
    hosts = host_names(args.hosts)
    bases = lay_out(job_dir, hosts, hyperparameters, dict(args.channel))
    codes = run_hosts(bases)
    archives = collect(bases[hosts[0]], job_dir)

    print()
    for host, code in sorted(codes.items()):
        print(f"{host}: {'succeeded' if code == 0 else f'failed with exit code {code}'}{_failure_line(bases[host])}")
    print("Model and output of", hosts[0] + ":", " ".join(archives))
    data = os.path.join(bases[hosts[0]], "output", "data")
    recorded = [os.path.join(data, name) for name in (PNG_NAME, CSV_NAME) if os.path.isfile(os.path.join(data, name))]
    if recorded:
        print(f"Training curves and metrics of {hosts[0]}:", " ".join(recorded))
    failed = [code for code in codes.values() if code != 0]
    return failed[0] if failed else 0


def _failure_line(base: str) -> str:
    try:
        with open(os.path.join(base, "output", "failure"), encoding="utf-8", errors="replace") as stream:
            return ": " + stream.readline().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())

"""Horovod over MPI, as the official images launch it: ``mpirun`` on the first host, reaching the
other hosts through ssh.

The other hosts run sshd (host keys generated for the job) and nothing else: the ranks ``mpirun``
starts there are children of that sshd. The client key is the one the image carries (every host
runs the same image, so every host accepts it); ``ensure_client_key`` makes one where none exists.
Every wait is bounded, and ``mpirun`` is started from an argument list, never through a shell:
``sagemaker_mpi_custom_mpi_options`` arrives already split (see ``settings``).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Iterable, List, Mapping, Sequence

from sagemaker_mxnet_container.errors import StartError, ToolkitError

DEFAULT_SSH_WAIT_SECONDS = 300.0
CLIENT_KEY_NAME = "id_ed25519"
HOST_KEY_NAME = "ssh_host_ed25519_key"

# What the ranks need from the launching environment: the job's own variables and the ones that
# steer Python, MXNet, OpenMP, Horovod, NCCL and CUDA. Everything else (the supervisor's own
# settings, the platform's credentials) stays behind.
EXPORTED_PREFIXES = ("SM_", "MXNET_", "OMP_", "KMP_", "HOROVOD_", "NCCL_", "CUDA_", "DMLC_", "AWS_")
EXPORTED_NAMES = ("PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")


class SSHError(ToolkitError):
    """A host's sshd could not be reached or started."""


def exported_names(env: Mapping[str, str]) -> List[str]:
    return sorted(name for name in env if name in EXPORTED_NAMES or name.startswith(EXPORTED_PREFIXES))


def mpirun_command(
    command: Sequence[str],
    hosts: Sequence[str],
    processes_per_host: int,
    env: Mapping[str, str],
    *,
    interface: str,
    custom_options: Sequence[str] = (),
    ssh_port: int = 22,
    ssh_key: str = "",
    as_root: bool = False,
    mpirun: str = "mpirun",
) -> List[str]:
    """The argv that runs ``command`` as ``len(hosts) * processes_per_host`` ranks, host by host."""
    # Open MPI starts ranks without ssh only on a host it knows as itself, and it does not know
    # algo-1 wherever that name is not this machine's own (local mode, tests).
    names = ["localhost"] if len(hosts) == 1 else list(hosts)
    argv = [
        mpirun,
        "--host",
        ",".join(f"{host}:{processes_per_host}" for host in names),
        "-np",
        str(len(hosts) * processes_per_host),
        # Fills each host's slots before the next: ranks ordered host by host, as the Gloo path.
        "--map-by",
        "slot",
        # MXNet and OpenMP size their own thread pools; pinning each rank to one core starves them.
        "--bind-to",
        "none",
        "--tag-output",
        "-mca",
        "btl",
        "^openib",
        "-mca",
        "btl_vader_single_copy_mechanism",
        "none",
        "-mca",
        "plm_rsh_no_tree_spawn",
        "1",
    ]
    if as_root:
        argv.append("--allow-run-as-root")
    if len(hosts) > 1:
        ssh_options = ["-p", str(ssh_port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        ssh_options += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR"]
        if ssh_key:
            ssh_options += ["-i", ssh_key]
        argv += ["-mca", "plm_rsh_args", " ".join(ssh_options)]
        argv += ["-mca", "btl_tcp_if_include", interface, "-mca", "oob_tcp_if_include", interface]
    else:
        argv += ["-mca", "btl_tcp_if_include", "lo", "-mca", "oob_tcp_if_include", "lo"]
    for name in exported_names(env):
        argv += ["-x", name]
    argv += ["-x", "HOROVOD_CONTROLLER=mpi", "-x", "HOROVOD_CPU_OPERATIONS=mpi"]
    argv += list(custom_options)
    rank = [sys.executable, "-m", "sagemaker_mxnet_container.horovod.mpi_rank", str(processes_per_host), "--"]
    return argv + ["--", *rank, *command]


def mpirun_environment(base_env: Mapping[str, str], as_root: bool) -> dict:
    env = dict(base_env)
    if as_root:
        # Open MPI refuses root unless told twice; containers run as root.
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def ensure_client_key(ssh_dir: str) -> str:
    """The private key ``mpirun`` connects with; generated if ``ssh_dir`` has none."""
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    key = os.path.join(ssh_dir, CLIENT_KEY_NAME)
    if not os.path.exists(key):
        _keygen(key)
    return key


def _keygen(path: str) -> None:
    executable = shutil.which("ssh-keygen")
    if executable is None:
        raise StartError("ssh-keygen is not installed: the mpirun launcher needs openssh-client in the image")
    try:
        subprocess.run(
            [executable, "-q", "-t", "ed25519", "-N", "", "-C", "sagemaker-mxnet-container", "-f", path],
            check=True,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as error:
        raise SSHError(f"ssh-keygen could not write {path}: {error.stderr.decode(errors='replace').strip()}") from None
    except subprocess.TimeoutExpired:
        raise SSHError(f"ssh-keygen did not finish writing {path} within 60 s") from None


def prepare_sshd(directory: str, authorized_keys: Iterable[str], port: int = 22) -> str:
    """Writes an sshd configuration that accepts only the given public keys (key login, no
    passwords), with a host key generated for this job; returns the configuration's path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    host_key = os.path.join(directory, HOST_KEY_NAME)
    if not os.path.exists(host_key):
        _keygen(host_key)
    authorized = os.path.join(directory, "authorized_keys")
    with open(authorized, "w", encoding="utf-8") as stream:
        stream.writelines(key.strip() + "\n" for key in authorized_keys)
    os.chmod(authorized, 0o600)
    config = os.path.join(directory, "sshd_config")
    settings = {
        "Port": str(port),
        "ListenAddress": "0.0.0.0",
        "HostKey": host_key,
        "AuthorizedKeysFile": authorized,
        "PermitRootLogin": "prohibit-password",
        "PubkeyAuthentication": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "UsePAM": "no",
        "PidFile": "none",
        # Open MPI's remote daemons find the ranks' environment on the command line (-x), not here.
        "PermitUserEnvironment": "no",
        # StrictModes audits every directory above the keys too, and refuses them under a
        # world-writable one such as /tmp; the files themselves are ours, 0600 in a 0700 directory.
        "StrictModes": "no",
        "X11Forwarding": "no",
        "PrintMotd": "no",
        "LogLevel": "ERROR",
    }
    with open(config, "w", encoding="utf-8") as stream:
        stream.writelines(f"{name} {value}\n" for name, value in settings.items())
    # sshd refuses to start without its privilege separation directory.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return config


def sshd_command(config: str, sshd: str = "") -> List[str]:
    """sshd in the foreground (-D), logging to stderr (-e): a supervised background child."""
    executable = sshd or shutil.which("sshd") or "/usr/sbin/sshd"
    return [executable, "-D", "-e", "-f", config]


def public_key(private_key: str) -> str:
    with open(private_key + ".pub", encoding="utf-8") as stream:
        return stream.read().strip()


def wait_for_sshd(hosts: Sequence[str], port: int = 22, timeout: float = DEFAULT_SSH_WAIT_SECONDS) -> None:
    """Returns once every host's sshd answers with its banner; raises SSHError naming the hosts
    that did not within ``timeout`` seconds (the peer toolkit waits an hour; ours says why sooner)."""
    deadline = time.monotonic() + timeout
    waiting = list(hosts)
    errors = {}
    delay = 0.1
    while waiting:
        for host in list(waiting):
            try:
                with socket.create_connection((host, port), timeout=5) as connection:
                    connection.settimeout(5)
                    if connection.recv(4).startswith(b"SSH-"):
                        waiting.remove(host)
                        continue
                    errors[host] = "it answered but not as an ssh server"
            except OSError as error:
                errors[host] = str(error)
        if not waiting:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            details = "; ".join(f"{host}: {errors.get(host, 'no answer')}" for host in waiting)
            raise SSHError(
                f"sshd on {', '.join(waiting)} did not answer on port {port} within {timeout:.0f} s ({details}); "
                "the mpirun launcher needs sshd on every host but the first (or use sagemaker_mpi_launcher gloo)"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)

"""Differential test against the official image's toolkit (issue 12; docs/compatibility.md).

The same script-mode jobs run twice: under the official toolkit (sagemaker-training 5.1.4 running
sagemaker-mxnet-training 4.3.0, its ``train`` console script in a venv of its own that
``benchmarks/peer.py`` installs) and under this image's ``train``. Both get copies of the same job
tree at the same path, the same code and the same launch environment; the user's program dumps
``sys.argv``, its working directory and ``os.environ`` to a file outside the job. The program must
receive the same argv and the same value for every variable the official toolkit gives it.

What may differ, each for a stated reason, is listed once, below (``DIFFERENT``, ``ADDED``,
``NORMALISED``), and in docs/compatibility.md. Everything else is compared exactly, JSON included.

Host names resolve through a hosts file bound over /etc/hosts in a mount namespace of each run's
own (``unshare``), since the official toolkit looks up every host before it runs anything. A
multi-host job runs every host: the official toolkit's hosts are independent processes; ours meet
over their liveness link, on loopback.

Each job runs once per module, when a test first needs it; each shape of the corpus (``SHAPES``)
checks its own part of a job's result, so that it can fail on its own.
"""

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import pytest
from conftest import REPO

from sagemaker_mxnet_container import resources

# --- what may differ, and why ------------------------------------------------------------------

FRAMEWORK_MODULE = "sagemaker_mxnet_container.entrypoint:main"

# Variables both give the user's program, with different values on purpose.
DIFFERENT = {
    "SM_FRAMEWORK_MODULE": "names this toolkit's own entry point, " + FRAMEWORK_MODULE,
    "SM_NUM_CPUS": "counts the CPUs this container may use (affinity and cgroup quota), not the host's; "
    "on a SageMaker instance, whose container has the whole machine, the two agree",
}
# The same two inside SM_TRAINING_ENV.
DIFFERENT_IN_TRAINING_ENV = {"framework_module": DIFFERENT["SM_FRAMEWORK_MODULE"], "num_cpus": DIFFERENT["SM_NUM_CPUS"]}
# What this image adds; a script written for the official image never reads them.
ADDED = {
    "SM_KVSTORE": "the kvstore this image chose for the job",
    "SM_CONTEXT": "the MXNet contexts this image chose, as MXNet prints them",
    "SM_IS_MASTER": "SM_TRAINING_ENV's is_master, also as a variable",
    "SM_MASTER_HOSTNAME": "SM_TRAINING_ENV's master_hostname, also as a variable",
    "SM_JOB_NAME": "SM_TRAINING_ENV's job_name, also as a variable",
    "OMP_NUM_THREADS": "OpenMP's pool sized to the CPUs the container may use (the user's own setting wins)",
    "DMLC_NODE_HOST": "ps-lite told this host's address instead of guessing it from the first interface",
    "DMLC_INTERFACE": "ps-lite told the job's network interface",
}
ADDED_TO_TRAINING_ENV = {"kvstore": ADDED["SM_KVSTORE"], "context": ADDED["SM_CONTEXT"]}
# Also added: SM_HP_/SM_CHANNEL_ under the name with other characters as _ (SM_HP_LEARNING_RATE beside
# the official SM_HP_LEARNING-RATE), where it names no other variable: a shell can read only that one.
# Compared after a normalisation, since they legitimately differ per interpreter.
NORMALISED = {
    "PYTHONPATH": "the first entry (the code directory) is compared; the official toolkit appends its own "
    "interpreter's sys.path, this image the PYTHONPATH it was started with",
}


# --- the jobs ----------------------------------------------------------------------------------

DUMP = """\
import json, os, sys
with open(os.environ["COMPAT_DUMP"], "w") as stream:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}, stream)
"""
# A command entry point: its #! line must choose the interpreter (bash, not /bin/sh). Through
# env, so that bash's "_" names the same program in both runs, whichever python3 PATH finds.
DUMP_SH = """\
#!/bin/bash
COMPAT_SHELL="bash ${BASH_VERSINFO[0]}" exec /usr/bin/env python3 "$(dirname "$0")/train.py" "$0" "$@"
"""
HOST_NAMES = ("algo-1", "algo-2")


def encoded(values: Dict[str, object]) -> Dict[str, str]:
    """As the platform writes hyperparameters.json: every value JSON-encoded into a string."""
    return {key: json.dumps(value) for key, value in values.items()}


@dataclass(frozen=True)
class JobSpec:
    hyperparameters: Dict[str, object]
    """As written in hyperparameters.json (values already encoded, unless written by hand)."""
    hosts: Tuple[str, ...] = ("algo-1",)
    resource_config: Optional[Callable[[str], dict]] = None
    """resourceconfig.json for a host; default: current_host and hosts only."""
    environ: Dict[str, str] = field(default_factory=dict)
    code: Dict[str, str] = field(default_factory=lambda: {"train.py": DUMP})
    tarball: bool = False
    """The code comes from a local sourcedir.tar.gz named by sagemaker_submit_directory."""
    ports: Tuple[str, ...] = ()
    """Hyperparameters that get a free port, the same for both toolkits."""


VALUES = {
    "bool-true": True,
    "bool-false": False,
    "none": None,
    "list-of-dicts": [{"epoch": 1}, {"epoch": 2}],
    "flat-dict": {"b": 2, "a": 1},
    "nested": {"z": {"x": None, "y": [1, True, "s"]}, "a=b": "c,d"},
    "k": 3,
    "é": "one letter",
    "learning-rate": 0.01,
    "train.files": "a.rec",
    "Mixed_Case": "x",
    "épocas": 5,
    "unicode-value": "ñandú 🦙 ünïcödé",
    "shell": "$(touch pwned); `id` | cat & > out *",
    "newline": "first\nsecond",
    "big-int": 2**70,
    "negative": -5,
    "small-float": 1e-05,
    "float": 0.1,
    "large-float": 1e20,
    "nan": float("nan"),
    "looks-numeric": "5",
    "empty-string": "",
    "empty-list": [],
    "empty-dict": {},
}
RAW = {
    # Written by hand: not JSON, or not a string at all.
    "raw-text": "not json {",
    "raw-int": 7,
    "raw-true": "True",
}
RESERVED = {
    "sagemaker_program": "train.py",
    "sagemaker_job_name": "tuning-2024-abc",
    "sagemaker_region": "eu-west-1",
    "sagemaker_container_log_level": 20,
    "sagemaker_estimator_class_name": "MXNet",
    "sagemaker_mpi_enabled": False,
    "_tuning_objective_metric": "validation:accuracy",
    "default_user_module_name": "legacy_module",
}


def _heterogeneous(host: str) -> dict:
    group = {"algo-1": "cpu", "algo-2": "gpu"}[host]
    return {
        "current_host": host,
        "hosts": ["algo-1", "algo-2"],
        "current_group_name": group,
        "current_instance_type": {"cpu": "ml.trn2.48xlarge", "gpu": "ml.p3.2xlarge"}[group],
        "instance_groups": [
            {"instance_group_name": "cpu", "instance_type": "ml.trn2.48xlarge", "hosts": ["algo-1"]},
            {"instance_group_name": "gpu", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-2"]},
        ],
        "network_interface_name": "ethwe",
        "topology": [{"hostName": "algo-1", "capacityUnitId": "u1"}, {"hostName": "algo-2", "capacityUnitId": "u2"}],
    }


def _unsorted(host: str) -> dict:
    return {"current_host": host, "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"}


JOBS = {
    "values": JobSpec(
        {**encoded({**VALUES, **RESERVED}), **RAW},
        environ={"TRAINING_JOB_NAME": "tuning-2024-abc-001-1a2b3c4d"},
    ),
    "command": JobSpec(
        # The official toolkit fails on a log level given as a name: only numbers compare.
        encoded({"sagemaker_program": "train.sh", "message": "it's $(not run) & done", "v": True,
                 "sagemaker_container_log_level": 10}),  # fmt: skip
        code={"train.sh": DUMP_SH, "train.py": DUMP},
        tarball=True,
    ),
    "program-variable": JobSpec(encoded({"epochs": 2}), environ={"SAGEMAKER_PROGRAM": "train.py"}),
    "program-variable-wins": JobSpec(
        encoded({"sagemaker_program": "decoy.py", "epochs": 2}),
        environ={"SAGEMAKER_PROGRAM": "train.py"},
        code={"train.py": DUMP, "decoy.py": DUMP},
    ),
    "multi-host": JobSpec(
        encoded({"sagemaker_program": "train.py", "lr": 0.5}),
        hosts=HOST_NAMES,
        resource_config=_unsorted,
        environ={"AWS_DEFAULT_REGION": "ap-south-1"},
        ports=("sagemaker_liveness_port",),
    ),
    "parameter-server": JobSpec(
        encoded({"sagemaker_program": "train.py", "sagemaker_parameter_server_enabled": True, "_ps_verbose": "1"}),
        hosts=HOST_NAMES,
        ports=("_ps_port", "sagemaker_liveness_port"),
    ),
    "heterogeneous": JobSpec(
        encoded({"sagemaker_program": "train.py", "sagemaker_distribution_instance_groups": ["gpu"], "epochs": 1}),
        hosts=HOST_NAMES,
        resource_config=_heterogeneous,
        ports=("sagemaker_liveness_port",),
    ),
}


# --- running them ------------------------------------------------------------------------------


@dataclass
class Seen:
    """What one host's user program received."""

    argv: list
    cwd: str
    env: Dict[str, str]
    launch: Dict[str, str]
    """The environment the toolkit was started with."""


@dataclass
class Result:
    official: Dict[str, Seen]
    ours: Dict[str, Seen]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tarball(files: Dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Runner:
    def __init__(self, root: Path, peer):
        self.root = root
        self.peer = peer
        self.hosts_file = root / "hosts"
        existing = Path("/etc/hosts").read_text()
        self.hosts_file.write_text(existing.rstrip("\n") + "\n127.0.0.1 " + " ".join(HOST_NAMES) + "\n")
        self.home = root / "home"
        self.home.mkdir()
        self.unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]

    def check_namespaces(self) -> Optional[str]:
        """Why host names cannot be given addresses here, or None."""
        if shutil.which("unshare") is None:
            return "needs unshare (util-linux) to give the job's host names an address"
        probe = subprocess.run(
            self._wrapped(["getent", "hosts", "algo-2"]), capture_output=True, text=True, timeout=60
        )
        if probe.returncode != 0:
            return f"cannot bind a hosts file in a mount namespace here: {probe.stderr.strip()[-300:]}"
        return None

    def _wrapped(self, command):
        bind = 'mount --bind "$0" /etc/hosts && exec "$@"'
        return [*self.unshare, "sh", "-c", bind, str(self.hosts_file), *command]

    def _lay_out(self, job_dir: Path, spec: JobSpec, host: str, hyperparameters: Dict[str, object]) -> Path:
        base = job_dir / host / "opt" / "ml"
        if base.exists():
            shutil.rmtree(base)
        config = base / "input" / "config"
        config.mkdir(parents=True)
        (base / "input" / "data" / "train").mkdir(parents=True)
        (base / "input" / "data" / "train-set").mkdir(parents=True)
        resource_config = (
            spec.resource_config(host) if spec.resource_config else {"current_host": host, "hosts": list(spec.hosts)}
        )
        files = {
            "hyperparameters.json": hyperparameters,
            "resourceconfig.json": resource_config,
            "inputdataconfig.json": {"train": {"TrainingInputMode": "File"}, "train-set": {}},
        }
        for name, content in files.items():
            (config / name).write_text(json.dumps(content))
        if not spec.tarball:
            (base / "code").mkdir()
            for name, text in spec.code.items():
                (base / "code" / name).write_text(text)
        return base

    def run(self, name: str, spec: JobSpec) -> Result:
        job_dir = self.root / name
        job_dir.mkdir()
        hyperparameters = dict(spec.hyperparameters)
        for key in spec.ports:
            hyperparameters[key] = json.dumps(str(_free_port()))
        if spec.tarball:
            archive = self.root / f"{name}-sourcedir.tar.gz"
            archive.write_bytes(_tarball(spec.code))
            hyperparameters["sagemaker_submit_directory"] = json.dumps(str(archive))
        official = self._run_all(job_dir, spec, hyperparameters, "official")
        ours = self._run_all(job_dir, spec, hyperparameters, "ours")
        return Result(official, ours)

    def _run_all(self, job_dir, spec, hyperparameters, toolkit) -> Dict[str, Seen]:
        started = {}
        for host in spec.hosts:
            base = self._lay_out(job_dir, spec, host, hyperparameters)
            dump = self.root / f"{job_dir.name}-{toolkit}-{host}.json"
            launch = {
                "HOME": str(self.home),
                "LANG": "C.UTF-8",
                "SAGEMAKER_BASE_DIR": str(base),
                "COMPAT_DUMP": str(dump),
                **spec.environ,
            }
            if toolkit == "official":
                launch["PATH"] = f"{Path(self.peer.train).parent}{os.pathsep}/usr/bin:/bin"
                launch.update(self.peer.environ())
                command = [self.peer.train]
            else:
                launch["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"
                launch["SAGEMAKER_MXNET_HOST_ADDRESSES"] = json.dumps({h: "127.0.0.1" for h in spec.hosts})
                command = [sys.executable, "-m", "sagemaker_mxnet_container"]
            process = subprocess.Popen(
                self._wrapped(command),
                env=launch,
                cwd=job_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            started[host] = (process, dump, launch)
        seen = {}
        for host, (process, dump, launch) in started.items():
            output, _ = process.communicate(timeout=180)
            assert process.returncode == 0, f"{toolkit}'s train on {host} failed:\n{output[-5000:]}"
            data = json.loads(dump.read_text())
            seen[host] = Seen(data["argv"], data["cwd"], data["env"], launch)
        return seen


@pytest.fixture(scope="module")
def run_job(tmp_path_factory, official_toolkit):
    runner = Runner(tmp_path_factory.mktemp("differential"), official_toolkit)
    reason = runner.check_namespaces()
    if reason:
        pytest.skip(reason)
    results: Dict[str, Result] = {}

    def run(name: str) -> Result:
        if name not in results:
            results[name] = runner.run(name, JOBS[name])
        return results[name]

    return run


# --- comparing ---------------------------------------------------------------------------------


def given_by_official(seen: Seen) -> Dict[str, str]:
    """The variables the official toolkit gave the program: set or changed since its launch."""
    return {name: value for name, value in seen.env.items() if seen.launch.get(name) != value}


def differences(official: Seen, ours: Seen) -> list:
    """Every difference that is not listed above, as readable lines."""
    found = []
    if official.argv != ours.argv:
        found.append(f"argv: official {official.argv!r}, ours {ours.argv!r}")
    if official.cwd != ours.cwd:
        found.append(f"working directory: official {official.cwd}, ours {ours.cwd}")
    given = given_by_official(official)
    for name, value in sorted(given.items()):
        mine = ours.env.get(name)
        if name in DIFFERENT:
            continue
        if name in NORMALISED:
            value, mine = value.split(os.pathsep)[0], (mine or "").split(os.pathsep)[0]
        if name == "SM_TRAINING_ENV":
            found += training_env_differences(json.loads(value), json.loads(mine or "{}"))
        elif mine != value:
            found.append(f"{name}: official {value!r}, ours {mine!r}")
    # Whatever the official toolkit passed on untouched, ours passes on too.
    for name, value in official.launch.items():
        if name in ours.launch and official.env.get(name) == value and ours.env.get(name) != ours.launch[name]:
            found.append(f"{name}: passed on by the official toolkit, not by ours")
    for name in sorted(set(ours.env) - set(official.env) - set(ours.launch)):
        if name not in ADDED and not is_alias(name, official.env):
            found.append(f"{name}: added by ours ({ours.env[name]!r}) and listed nowhere")
    return found


def training_env_differences(official: dict, ours: dict) -> list:
    found = []
    for key in sorted(set(official) | set(ours)):
        if key in DIFFERENT_IN_TRAINING_ENV:
            continue
        if key not in official:
            if key not in ADDED_TO_TRAINING_ENV:
                found.append(f"SM_TRAINING_ENV[{key!r}]: added by ours and listed nowhere")
        elif json.dumps(official[key], sort_keys=True) != json.dumps(ours.get(key, "<missing>"), sort_keys=True):
            found.append(f"SM_TRAINING_ENV[{key!r}]: official {official[key]!r}, ours {ours.get(key, '<missing>')!r}")
    return found


def is_alias(name: str, official_env: Dict[str, str]) -> bool:
    """``SM_HP_``/``SM_CHANNEL_`` plus a key with other characters as ``_``."""
    keys = {"SM_HP_": json.loads(official_env["SM_HPS"]), "SM_CHANNEL_": json.loads(official_env["SM_CHANNELS"])}
    return any(name == prefix + variable_name(key) for prefix, found in keys.items() for key in found)


def argument_name(key: str) -> str:
    return f"--{key}" if len(key) > 1 else f"-{key}"


def variable_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


def argument_pair(argv: list, key: str) -> Optional[list]:
    """The name and value the program received for hyperparameter ``key``."""
    name = argument_name(key)
    for index in range(1, len(argv) - 1):
        if argv[index] == name:
            return argv[index : index + 2]
    return None


# --- the corpus --------------------------------------------------------------------------------


def _value_shape(key: str):
    def check(result: Result):
        official, ours = result.official["algo-1"], result.ours["algo-1"]
        pair = argument_pair(official.argv, key)
        assert pair is not None, f"the official toolkit passed no {argument_name(key)}: {official.argv!r}"
        assert argument_pair(ours.argv, key) == pair
        variable = "SM_HP_" + key.upper()
        assert ours.env.get(variable) == official.env[variable]
        assert json.dumps(json.loads(ours.env["SM_HPS"])[key]) == json.dumps(json.loads(official.env["SM_HPS"])[key])

    return "values", check


def _variables_shape(job: str, names, hosts=("algo-1",)):
    def check(result: Result):
        for host in hosts:
            official, ours = result.official[host], result.ours[host]
            for name in names:
                assert name in official.env, f"the official toolkit gives no {name} on {host}"
                assert ours.env.get(name) == official.env[name], f"{name} on {host}"

    return job, check


def _training_env_shape(job: str, keys, hosts=("algo-1",)):
    def check(result: Result):
        for host in hosts:
            official = json.loads(result.official[host].env["SM_TRAINING_ENV"])
            ours = json.loads(result.ours[host].env["SM_TRAINING_ENV"])
            for key in keys:
                assert ours[key] == official[key], f"SM_TRAINING_ENV[{key!r}] on {host}"

    return job, check


def _absent_shape(key: str):
    def check(result: Result):
        official, ours = result.official["algo-1"], result.ours["algo-1"]
        for seen in (official, ours):
            assert key not in json.loads(seen.env["SM_HPS"])
            assert not any(key in argument for argument in seen.argv)
            assert key not in json.loads(seen.env["SM_FRAMEWORK_PARAMS"])
            assert "SM_HP_" + key.upper() not in seen.env

    return "values", check


def _argv_shape(job: str, hosts=("algo-1",)):
    def check(result: Result):
        for host in hosts:
            assert result.ours[host].argv == result.official[host].argv
            assert result.ours[host].cwd == result.official[host].cwd

    return job, check


def _shell_shape(result: Result):
    official, ours = result.official["algo-1"], result.ours["algo-1"]
    assert official.env["COMPAT_SHELL"].startswith("bash ")
    assert ours.env.get("COMPAT_SHELL") == official.env["COMPAT_SHELL"]
    assert ours.argv == official.argv


def _parameter_server_shape(result: Result):
    for host in HOST_NAMES:
        official, ours = result.official[host], result.ours[host]
        names = sorted(name for name in official.env if name.startswith("DMLC_") or name == "PS_VERBOSE")
        assert names == ["DMLC_NUM_SERVER", "DMLC_NUM_WORKER", "DMLC_PS_ROOT_PORT", "DMLC_PS_ROOT_URI", "DMLC_ROLE",
                         "PS_VERBOSE"]  # fmt: skip
        assert {name: ours.env.get(name) for name in names} == {name: official.env[name] for name in names}


SHAPES = {
    **{f"value: {key}": _value_shape(key) for key in VALUES},
    **{f"hand-written value: {key}": _value_shape(key) for key in RAW},
    "tuning: _tuning_objective_metric never reaches the script": _absent_shape("_tuning_objective_metric"),
    "reserved default_user_module_name never reaches the script": _absent_shape("default_user_module_name"),
    "argv in full, sorted, one-letter names as -k": _argv_shape("values"),
    "framework parameters: only the non-reserved sagemaker_* keys": _variables_shape("values", ["SM_FRAMEWORK_PARAMS"]),
    "job names: TRAINING_JOB_NAME and the tuning job's sagemaker_job_name": _training_env_shape(
        "values", ["job_name"]
    ),
    "SAGEMAKER_JOB_NAME, SAGEMAKER_REGION and CURRENT_HOST": _variables_shape(
        "values", ["SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION", "CURRENT_HOST"]
    ),
    "instance variables of a homogeneous single host": _variables_shape(
        "values",
        ["SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP", "SM_CURRENT_INSTANCE_GROUP_HOSTS",
         "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT", "SM_DISTRIBUTION_INSTANCE_GROUPS", "SM_IS_HETERO",
         "SM_NUM_NEURONS"],
    ),  # fmt: skip
    "channel names upper-cased only (SM_CHANNEL_TRAIN-SET)": _variables_shape(
        "values", ["SM_CHANNELS", "SM_CHANNEL_TRAIN", "SM_CHANNEL_TRAIN-SET"]
    ),
    ".sh entry point: its #! line chooses the interpreter": ("command", _shell_shape),
    ".sh entry point: argv verbatim, $0 as ./train.sh": _argv_shape("command"),
    "log level DEBUG": _variables_shape("command", ["SM_LOG_LEVEL"]),
    "code from a local tarball: SM_MODULE_DIR names it": _variables_shape("command", ["SM_MODULE_DIR"]),
    "SAGEMAKER_PROGRAM names the entry point": _variables_shape(
        "program-variable", ["SM_USER_ENTRY_POINT", "SM_MODULE_NAME", "SM_MODULE_DIR"]
    ),
    "a job without a name": _training_env_shape("program-variable", ["job_name"]),
    "SAGEMAKER_PROGRAM wins over sagemaker_program": _argv_shape("program-variable-wins"),
    "multi-host: every host's view, hosts in resourceconfig.json's order": _variables_shape(
        "multi-host", ["SM_HOSTS", "SM_CURRENT_HOST", "CURRENT_HOST", "SM_RESOURCE_CONFIG"], HOST_NAMES
    ),
    "multi-host: the first listed host is the master": _training_env_shape(
        "multi-host", ["master_hostname", "is_master", "distribution_hosts"], HOST_NAMES
    ),
    "region from AWS_DEFAULT_REGION": _variables_shape("multi-host", ["SAGEMAKER_REGION"], HOST_NAMES),
    "parameter server: DMLC_* and PS_VERBOSE": ("parameter-server", _parameter_server_shape),
    "parameter server: the distributed instance group": _variables_shape(
        "parameter-server", ["SM_DISTRIBUTION_INSTANCE_GROUPS"], HOST_NAMES
    ),
    "heterogeneous cluster: instance group variables": _variables_shape(
        "heterogeneous",
        ["SM_CURRENT_INSTANCE_TYPE", "SM_CURRENT_INSTANCE_GROUP", "SM_CURRENT_INSTANCE_GROUP_HOSTS",
         "SM_INSTANCE_GROUPS", "SM_INSTANCE_GROUPS_DICT", "SM_IS_HETERO", "SM_NETWORK_INTERFACE_NAME"],
        HOST_NAMES,
    ),  # fmt: skip
    "heterogeneous cluster: sagemaker_distribution_instance_groups picks the master": _training_env_shape(
        "heterogeneous", ["distribution_instance_groups", "distribution_hosts", "master_hostname", "is_master"],
        HOST_NAMES,
    ),  # fmt: skip
    "topology and Neuron cores from resourceconfig.json": _variables_shape(
        "heterogeneous", ["SM_TOPOLOGY", "SM_NUM_NEURONS"], HOST_NAMES
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_program_receives_what_the_official_toolkit_gives_it(run_job, shape):
    job, check = SHAPES[shape]
    check(run_job(job))


@pytest.mark.parametrize("job", list(JOBS))
def test_every_variable_and_argument_of_a_job_is_the_official_ones(run_job, job):
    result = run_job(job)
    for host in JOBS[job].hosts:
        assert differences(result.official[host], result.ours[host]) == [], host


def test_the_deliberate_differences_are_what_docs_compatibility_md_says(run_job, official_toolkit):
    official, ours = run_job("values").official["algo-1"], run_job("values").ours["algo-1"]
    assert official.env["SM_FRAMEWORK_MODULE"] == official_toolkit.environ()["SAGEMAKER_TRAINING_MODULE"]
    assert ours.env["SM_FRAMEWORK_MODULE"] == FRAMEWORK_MODULE
    assert official.env["SM_NUM_CPUS"] == str(os.cpu_count())
    assert ours.env["SM_NUM_CPUS"] == str(resources.detect().num_cpus)
    assert ours.env["SM_HP_LEARNING_RATE"] == official.env["SM_HP_LEARNING-RATE"]
    documented = (REPO / "docs" / "compatibility.md").read_text()
    for name in [*DIFFERENT, *ADDED, *NORMALISED, "SM_HP_LEARNING_RATE"]:
        assert f"`{name}`" in documented, name

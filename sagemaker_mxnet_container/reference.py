"""What ``train`` reads, what it writes and how it exits, declared once.

``train --help`` prints these tables as text, and the README holds the same tables as Markdown,
checked by a test to be exactly what ``markdown`` renders here: one source, no second copy to
drift. The operator's settings come from their own declarations in ``settings``.
"""

import textwrap
from dataclasses import dataclass
from typing import Tuple

from sagemaker_mxnet_container import settings


@dataclass(frozen=True)
class Table:
    title: str
    columns: Tuple[str, ...]
    rows: Tuple[Tuple[str, ...], ...]


FILES = Table(
    "Files it reads, under $SAGEMAKER_BASE_DIR (default /opt/ml)",
    ("path", "what it is"),
    (
        ("input/config/hyperparameters.json", "the hyperparameters, each value JSON-encoded in a string"),
        ("input/config/resourceconfig.json", "this host's name, every host's, and the instance groups"),
        ("input/config/inputdataconfig.json", "the data channels"),
        ("input/data/<channel>/", "each channel's data, handed to the code as `SM_CHANNEL_<NAME>`"),
        ("code/", "the user's code: fetched there from `sagemaker_submit_directory`, or already there"),
        (
            "code/requirements.txt",
            "installed before the code runs, as pip's configuration (pip.conf, `PIP_*`) says, by uv where it "
            "does what pip would",
        ),
        ("code/setup.py", "the code installed as a package, and its entry point run as a module"),
    ),
)

RESERVED_HYPERPARAMETERS = Table(
    "Reserved hyperparameters",
    ("key", "meaning"),
    (
        (
            "sagemaker_program",
            "the entry point, relative to the code directory (the environment's `SAGEMAKER_PROGRAM` wins, "
            "as in the official image)",
        ),
        ("sagemaker_submit_directory", "where the code comes from: `s3://`, a local path or `file://` URI, or unset"),
        ("sagemaker_region", "the S3 region (else `AWS_REGION`/`AWS_DEFAULT_REGION`)"),
        ("sagemaker_container_log_level", "`20`, `INFO`, `DEBUG`, …"),
        (
            "sagemaker_job_name",
            "the SDK's job name (`SAGEMAKER_JOB_NAME`; `SM_TRAINING_ENV`'s `job_name` is the platform's "
            "`TRAINING_JOB_NAME`)",
        ),
        ("sagemaker_mode", "`legacy` or `script`, to override the detected mode"),
        ("sagemaker_kvstore", "the kvstore to hand the user's code instead of the chosen one"),
        (
            "sagemaker_stop_grace_seconds",
            "seconds between forwarding SIGTERM and SIGKILL (default 100; the platform kills at 120)",
        ),
        (
            "sagemaker_parameter_server_enabled",
            "script mode across hosts: `true` runs MXNet's parameter server beside the script (default: off, "
            "as in the official image; legacy mode always runs it)",
        ),
        (
            "sagemaker_parameter_server_port",
            "the ps-lite scheduler's port on the first host (default: `_ps_port`, the official MXNet toolkit's "
            "hyperparameter, else 8000); `_ps_verbose` is ps-lite's `PS_VERBOSE` (default 0)",
        ),
        (
            "sagemaker_liveness_port",
            "the port of the link between the hosts' supervisors on the first host (default: the scheduler's + 1)",
        ),
        ("sagemaker_mpi_enabled", "run the program as Horovod workers"),
        ("sagemaker_mpi_num_of_processes_per_host", "workers per host (default: GPUs, else 1)"),
        ("sagemaker_mpi_launcher", "`gloo` (default) or `mpirun`"),
        (
            "sagemaker_mpi_custom_mpi_options",
            "extra `mpirun` options; under Gloo only `-x NAME=VALUE` (set in every rank), `-x NAME` and "
            "`--NCCL_DEBUG LEVEL` apply, and any other option fails the job naming it",
        ),
        (
            "sagemaker_horovod_rendezvous_port",
            "the Gloo rendezvous server's port on the first host (default 29400)",
        ),
        (
            "sagemaker_distribution_instance_groups",
            "heterogeneous clusters: the instance groups that train together (`SM_DISTRIBUTION_INSTANCE_GROUPS`, "
            "the master host)",
        ),
    ),
)

ENVIRONMENT = Table(
    "Environment variables it reads",
    ("variable", "meaning"),
    (
        ("SAGEMAKER_BASE_DIR", "where the job's tree is (default `/opt/ml`)"),
        ("SAGEMAKER_PROGRAM", "the entry point, over `sagemaker_program` (an image that carries its code)"),
        ("TRAINING_JOB_NAME", "the platform's job name, the code's `SM_TRAINING_ENV` `job_name`"),
        ("AWS_ENDPOINT_URL_S3", "another S3 endpoint for the code's download"),
        ("AWS_REGION, AWS_DEFAULT_REGION", "the S3 region where `sagemaker_region` is unset"),
        ("CA_REPOSITORY_ARN", "requirements install from this CodeArtifact repository, as in the official image"),
        ("CUDA_VISIBLE_DEVICES", "narrows the GPUs `nvidia-smi` lists"),
        ("OMP_NUM_THREADS", "kept where set; else set to the CPUs the container may use"),
    ),
)

OUTCOME = Table(
    "What it writes",
    ("path", "what it is"),
    (
        ("output/success", "the job succeeded (empty)"),
        (
            "output/failure",
            "the job failed: the cause on the first line (what the platform shows), then its context",
        ),
        ("model/", "the model: saved by the code, or by `train` for a legacy module's returned model"),
        ("output/data/", "what the code writes there; the platform uploads it as `output.tar.gz`"),
        ("output/data/metrics.csv", "the metric values found in the code's output"),
        ("output/data/training-curves.png", "those metrics drawn, one panel per metric"),
    ),
)

EXIT_CODES = Table(
    "Exit codes",
    ("code", "meaning"),
    (
        ("0", "the job succeeded"),
        (
            "1",
            "the configuration, the code's download or install, or `train` itself failed, or the code exited "
            "0 but left `output/failure`",
        ),
        ("N", "the user's code exited with N"),
        ("128 + N", "the user's code was killed by signal N (137: SIGKILL, often out of memory)"),
        ("143, 130", "the job was stopped by SIGTERM (the platform's stop) or SIGINT"),
    ),
)


def operator_settings() -> Table:
    return Table(
        "Operator settings (checked when train starts; unset or empty means the default)",
        ("variable", "default", "accepts", "what it does"),
        tuple(
            (variable.name, variable.default_text, variable.kind.accepted, variable.description)
            for variable in settings.variables()
        ),
    )


def tables() -> Tuple[Table, ...]:
    return (FILES, RESERVED_HYPERPARAMETERS, ENVIRONMENT, operator_settings(), OUTCOME, EXIT_CODES)


def markdown(table: Table) -> str:
    """The table as the README holds it: the first column as code."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    for first, *rest in table.rows:
        lines.append("| " + " | ".join([f"`{first}`", *rest]) + " |")
    return "\n".join(lines)


def text(table: Table, width: int = 100) -> str:
    """The table for a terminal: each row's first column, then the rest indented beneath it."""
    lines = [table.title + ":"]
    for first, *rest in table.rows:
        lines.append(f"  {first}")
        detail = "; ".join(f"{column} {value}" for column, value in zip(table.columns[1:-1], rest[:-1], strict=True))
        meaning = f"{rest[-1]} ({detail})" if detail else rest[-1]
        lines += textwrap.wrap(meaning, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def help_text(width: int = 100) -> str:
    return "\n\n".join(text(table, width) for table in tables())


if __name__ == "__main__":
    # The README's tables, to paste where tests/test_reference.py says one differs.
    for table in tables():
        print(f"{table.title}:\n\n{markdown(table)}\n")

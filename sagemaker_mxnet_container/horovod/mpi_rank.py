"""Runs one rank that ``mpirun`` started, with the ``SM_*`` view of the host it runs on.

    python -m sagemaker_mxnet_container.horovod.mpi_rank PROCESSES_PER_HOST -- PROGRAM [ARG ...]

``mpirun`` hands every rank the first host's environment (``-x``), so a rank on algo-2 would be
told it runs on algo-1. The ranks are placed host by host, so the rank number says which host
this is; ``SM_CURRENT_HOST``, ``CURRENT_HOST``, ``SM_IS_MASTER`` and ``SM_TRAINING_ENV`` are corrected from it and
the program replaces this process (``exec``: signals and the exit status are the program's own).
"""

import json
import os
import sys

from sagemaker_mxnet_container.sm_variables import variable_value


def host_environment(environ, processes_per_host: int) -> dict:
    """The variables to change for this rank (empty where mpirun did not say which rank it is)."""
    rank = environ.get("OMPI_COMM_WORLD_RANK")
    hosts = json.loads(environ.get("SM_HOSTS", "[]"))
    if rank is None or not hosts:
        return {}
    host = hosts[min(int(rank) // processes_per_host, len(hosts) - 1)]
    training = json.loads(environ["SM_TRAINING_ENV"]) if "SM_TRAINING_ENV" in environ else None
    master = training.get("master_hostname", hosts[0]) if training else hosts[0]
    changed = {"SM_CURRENT_HOST": host, "CURRENT_HOST": host, "SM_IS_MASTER": json.dumps(host == master)}
    if training is not None:
        training.update(current_host=host, is_master=host == master)
        changed["SM_TRAINING_ENV"] = variable_value(training)
    return changed


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m sagemaker_mxnet_container.horovod.mpi_rank PROCESSES_PER_HOST -- PROGRAM [ARG ...]",
            file=sys.stderr,
        )
        return 2
    os.environ.update(host_environment(os.environ, int(argv[0])))
    program = argv[2:]
    try:
        os.execvp(program[0], program)
    except OSError as error:
        print(f"cannot start {program[0]}: {error.strerror or error}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())

"""MXNet's parameter server (ps-lite) beside the user's code: the scheduler on the first host, a
server on every host, the user's process the worker.

ps-lite's processes are children of the supervisor like the user's process: started before it,
watched while it runs (their unexpected exit ends the job on every host), and ended when the
job ends.
"""

import contextlib
import logging
import os
import sys
from typing import Dict, Iterator, Mapping

from sagemaker_mxnet_container.cluster.hosts import check_port_free
from sagemaker_mxnet_container.cluster.job import Cluster, ServiceWatch
from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.runner import Command, Supervisor

logger = logging.getLogger(__name__)

# After the last worker finishes, ps-lite's servers and scheduler finish their own shutdown
# handshake; they get this long before they are ended.
_SHUTDOWN_SECONDS = 3.0


def uses_parameter_server(env: TrainingEnvironment, legacy: bool) -> bool:
    """Legacy code always expects ``dist_sync`` across hosts; a script opts in with
    ``sagemaker_parameter_server_enabled``, as in the official MXNet toolkit."""
    if len(env.hosts) == 1:
        return False
    return legacy or env.cluster.parameter_server_enabled


def ps_variables(env: TrainingEnvironment, addresses: Mapping[str, str]) -> Dict[str, str]:
    """The ``DMLC_*`` variables every ps-lite process of this host shares."""
    variables = {
        "DMLC_PS_ROOT_URI": addresses[env.hosts[0]],
        "DMLC_PS_ROOT_PORT": str(env.cluster.parameter_server_port),
        "DMLC_NUM_SERVER": str(len(env.hosts)),
        "DMLC_NUM_WORKER": str(len(env.hosts)),
        # ps-lite would otherwise guess the address from the first network interface it finds.
        "DMLC_NODE_HOST": addresses[env.current_host],
    }
    if os.path.exists(os.path.join("/sys/class/net", env.network_interface_name)):
        variables["DMLC_INTERFACE"] = env.network_interface_name
    return variables


@contextlib.contextmanager
def parameter_server(
    job: Cluster, supervisor: Supervisor, base_env: Mapping[str, str], code_dir: str
) -> Iterator[Dict[str, str]]:
    """Runs this host's scheduler (first host) and server; yields the worker's variables.

    They get the user's environment: a server unpickles the user's optimizer, which may live in
    the user's code.
    """
    env = job.env
    common = {**base_env, **ps_variables(env, job.addresses)}
    # ps-lite's processes exit 0 by themselves once every worker has finished.
    watch = ServiceWatch(job, supervisor, clean_exit_expected=True)
    supervisor.on_background_exit = watch
    launch = [sys.executable, "-c", "import mxnet"]
    try:
        if env.is_first_host:
            check_port_free(
                env.cluster.parameter_server_port,
                env.current_host,
                "the parameter-server scheduler",
                "sagemaker_parameter_server_port",
            )
            supervisor.start_background(
                Command(launch, {**common, "DMLC_ROLE": "scheduler"}, code_dir, "ps-lite scheduler")
            )
        supervisor.start_background(Command(launch, {**common, "DMLC_ROLE": "server"}, code_dir, "ps-lite server"))
        logger.info(
            "Started the parameter server%s; scheduler at %s:%s",
            " and its scheduler" if env.is_first_host else "",
            common["DMLC_PS_ROOT_URI"],
            common["DMLC_PS_ROOT_PORT"],
        )
        yield {key: value for key, value in common.items() if key.startswith("DMLC_")} | {"DMLC_ROLE": "worker"}
    except BaseException:
        watch.ending = True
        supervisor.end_background()
        raise
    watch.ending = True
    supervisor.end_background(_SHUTDOWN_SECONDS)

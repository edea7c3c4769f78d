"""Jobs on one or more hosts: how the hosts find each other, watch each other and end together,
and MXNet's parameter server beside the user's code.

- ``hosts``: the hosts' names resolved to addresses (retried while instances boot); ports
  checked free before a service listens on them.
- ``link``: the liveness link between the hosts' supervisors (heartbeats, barriers, failures
  carried to every host).
- ``job``: ``join`` (this host's part in the job, as a context), ``Cluster`` (the view the rest
  of ``train`` gets), ``ServiceWatch`` (a background service's exit ends the job everywhere).
- ``ps_lite``: ps-lite's scheduler and servers as supervised children, and their ``DMLC_*``
  variables.
- ``ps_worker``: runs a script-mode program as a ps-lite worker that cannot hang at exit after
  failing (``python -m sagemaker_mxnet_container.cluster.ps_worker``).
"""

from sagemaker_mxnet_container.cluster.hosts import check_port_free, resolve_hosts
from sagemaker_mxnet_container.cluster.job import Cluster, ServiceWatch, join
from sagemaker_mxnet_container.cluster.link import Link
from sagemaker_mxnet_container.cluster.ps_lite import parameter_server, ps_variables, uses_parameter_server

__all__ = [
    "Cluster",
    "Link",
    "ServiceWatch",
    "check_port_free",
    "join",
    "parameter_server",
    "ps_variables",
    "resolve_hosts",
    "uses_parameter_server",
]

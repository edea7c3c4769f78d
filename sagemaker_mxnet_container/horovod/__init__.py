"""Horovod: running a script-mode program as Horovod ranks on every host.

``settings`` reads the ``sagemaker_mpi_*`` hyperparameters; ``launch`` runs this host's part of
the job under the supervisor, over Gloo (``gloo`` plans the ranks, ``rendezvous`` is the first
host's server) or over ``mpirun`` (``mpi``: the command, sshd and keys; ``mpi_rank``: a rank's
own host view).
"""

"""Run by mpirun as two ranks: each contributes its rank; rank 0 prints what they agreed on."""

import json

from mpi4py import MPI

comm = MPI.COMM_WORLD
gathered = comm.allgather(comm.Get_rank())
total = comm.allreduce(comm.Get_rank() + 1, op=MPI.SUM)
if comm.Get_rank() == 0:
    print(json.dumps({"size": comm.Get_size(), "ranks": gathered, "sum": total}))

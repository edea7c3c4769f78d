"""A user script that reports the threads MXNet and OpenMP use in the process the toolkit started.

It writes JSON to $BENCHMARK_REPORT. The peer's venv has no MXNet: there the script re-executes
itself with $BENCHMARK_MXNET_PYTHON, keeping the variables the toolkit set, which are what
decide the thread counts.
"""

import json
import os
import sys

try:
    import mxnet as mx
except ImportError:
    python = os.environ["BENCHMARK_MXNET_PYTHON"]
    # The peer puts its own site-packages on PYTHONPATH, whose numpy is too new for MXNet 1.9.1;
    # the variables that decide thread counts are kept.
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    os.execve(python, [python, *sys.argv], environ)

import ctypes  # noqa: E402

# MXNet links the system's libgomp: this handle is the library its operators use.
gomp = ctypes.CDLL("libgomp.so.1")
data = mx.nd.random.uniform(shape=(256, 1, 28, 28))
weight = mx.nd.random.uniform(shape=(64, 1, 5, 5))
for _ in range(5):
    total = mx.nd.relu(mx.nd.Convolution(data, weight, no_bias=True, kernel=(5, 5), num_filter=64)).sum()
total.wait_to_read()
report = {
    "cpus": len(os.sched_getaffinity(0)),
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    "MXNET_CPU_WORKER_NTHREADS": os.environ.get("MXNET_CPU_WORKER_NTHREADS"),
    "omp_max_threads": gomp.omp_get_max_threads(),
    "os_threads": len(os.listdir("/proc/self/task")),
}
with open(os.environ["BENCHMARK_REPORT"], "w") as stream:
    json.dump(report, stream)

#!/usr/bin/env bash
# Usage: docker/gpu-check.sh
#
# The GPU checks that cannot run where CI runs: on a machine with an NVIDIA GPU and its driver,
# with mxnet-cu117==1.9.1 and this package installed for $PYTHON (default: python, else python3).
# Inside the GPU image (the NVIDIA container toolkit mounts the driver and nvidia-smi):
#
#   docker run --rm --gpus all -v "$PWD/docker/gpu-check.sh:/gpu-check.sh:ro" \
#       sagemaker-mxnet-training:1.9.1-gpu-py3 bash /gpu-check.sh
#
# or on the host itself, after `pip install -e '.[gpu]'` in a Python 3.11 environment:
#
#   PYTHON=.venv-gpu/bin/python docker/gpu-check.sh
#
# Checks, each printed as PASS or FAIL; exits 1 if any fails:
#   1. our resources module counts the GPUs that `nvidia-smi --list-gpus` lists, and honours
#      CUDA_VISIBLE_DEVICES;
#   2. MXNet's CUDA build sees as many and computes on mx.gpu(0);
#   3. a script-mode job run through `train` gets SM_NUM_GPUS and SM_CONTEXT naming the GPUs and
#      computes on the context it was given.
set -euo pipefail

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
if ! command -v nvidia-smi >/dev/null; then
  echo "FAIL nvidia-smi is not on PATH: no NVIDIA driver here (with docker: --gpus all)" >&2
  exit 1
fi
listed=$(nvidia-smi --list-gpus | grep -c '^GPU ' || true)
echo "nvidia-smi --list-gpus lists $listed GPU(s)"

exec "$PYTHON" - "$listed" <<'PY'
import json
import os
import subprocess
import sys
import tempfile

listed = int(sys.argv[1])
failures = []


def check(name, condition, detail=""):
    print(("PASS " if condition else "FAIL ") + name + (f": {detail}" if detail else ""))
    if not condition:
        failures.append(name)


from sagemaker_mxnet_container import mxnet_settings, resources  # noqa: E402

environ = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
counted = resources.count_gpus(environ)
check("resources counts the listed GPUs", listed > 0 and counted == listed, f"{counted} of {listed}")
check("CUDA_VISIBLE_DEVICES=0 narrows to one", resources.count_gpus({"CUDA_VISIBLE_DEVICES": "0"}) == min(1, listed))
settings = mxnet_settings.choose(1, counted)
check("one host uses every GPU", settings.context_string == ",".join(f"gpu({i})" for i in range(listed)),
      f"context {settings.context_string}, kvstore {settings.kvstore}")

try:
    import mxnet as mx
except Exception as error:  # an ImportError, or OSError from a missing CUDA library
    check("mxnet imports", False, f"{type(error).__name__}: {error} (install mxnet-cu117==1.9.1)")
else:
    features = mx.runtime.Features()
    check("mxnet is the CUDA build", features.is_enabled("CUDA"), mx.__version__)
    check("mxnet sees the GPUs", mx.context.num_gpus() == listed, f"{mx.context.num_gpus()}")
    try:
        total = (mx.nd.ones((2, 3), ctx=mx.gpu(0)) * 2).sum().asscalar()
        mx.nd.waitall()
        check("an operation on mx.gpu(0)", total == 12.0, f"sum {total}")
    except Exception as error:
        check("an operation on mx.gpu(0)", False, f"{type(error).__name__}: {str(error).strip().splitlines()[-1]}")

    program = """
import json, os, re
import mxnet as mx
# SM_CONTEXT is "gpu(0),gpu(1)" or "cpu(0)", as MXNet prints contexts.
contexts = [mx.Context(kind, int(index)) for kind, index in re.findall(r"(\\w+)\\((\\d+)\\)", os.environ["SM_CONTEXT"])]
value = float((mx.nd.ones((4,), ctx=contexts[0]) + 1).sum().asscalar())
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as stream:
    json.dump({"num_gpus": os.environ["SM_NUM_GPUS"], "context": os.environ["SM_CONTEXT"], "value": value}, stream)
if __name__ == "__main__":
    pass
"""
    with tempfile.TemporaryDirectory() as base:
        for directory in ("input/config", "input/data", "code"):
            os.makedirs(os.path.join(base, directory))
        configs = {
            "hyperparameters.json": {"sagemaker_program": json.dumps("check.py")},
            "resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"]},
            "inputdataconfig.json": {},
        }
        for name, content in configs.items():
            with open(os.path.join(base, "input/config", name), "w") as stream:
                json.dump(content, stream)
        with open(os.path.join(base, "code/check.py"), "w") as stream:
            stream.write(program)
        run = subprocess.run(
            [sys.executable, "-m", "sagemaker_mxnet_container"],
            env={**environ, "SAGEMAKER_BASE_DIR": base},
            capture_output=True,
            text=True,
            timeout=600,
        )
        seen_path = os.path.join(base, "model/seen.json")
        seen = json.load(open(seen_path)) if os.path.exists(seen_path) else None
        expected = {"num_gpus": str(listed), "context": settings.context_string, "value": 8.0}
        check("train runs a job on the GPUs", run.returncode == 0 and seen == expected,
              f"exit {run.returncode}, saw {seen}" + ("" if run.returncode == 0 else "\n" + run.stderr[-2000:]))

sys.exit(1 if failures else 0)
PY

"""The requirements rows: a job whose code has a requirements.txt, each toolkit installing it into
a fresh copy of its own environment, from the same indexes (this machine's pip configuration),
with cold caches (pip's and uv's cache directories new and empty) and warm ones (those of the
last cold run). The user script times its first line, then imports what it installed.

Both environments start with the numpy the image has (MXNet pins it below 1.24), so that
neither toolkit moves numpy and the other not. The image's PYTHONDONTWRITEBYTECODE=1 is set, so
that the user's imports cost what they cost in the image: pip byte-compiles at install, uv
leaves it to the import.
"""

import os
import shutil
import subprocess
from typing import Dict, List

from benchmarks import jobs, measure
from benchmarks.report import Budget, Row

# The example of what MXNet jobs install: 35 distributions once resolved.
TYPICAL = "gluoncv\npandas\nscikit-learn\nopencv-python-headless\nnumpy<1.24\n"
# Its first line takes the time, before any import; its last the time after importing what the
# requirements brought (gluoncv imports MXNet, which neither environment has).
USER_SCRIPT = """\
import time; FIRST = time.time()  # noqa: E401,E702
import os
import sys

stream = open(os.environ["BENCHMARK_MARKER"], "w")
for name in os.environ.get("BENCHMARK_IMPORTS", "").split():
    __import__(name)
stream.write(f"{FIRST!r} {time.time()!r} {os.getpid()}"); stream.close()  # noqa: E702
"""
TYPICAL_IMPORTS = "pandas sklearn.linear_model cv2"
BUDGET = Budget(max_ratio=0.2)


def _numpy(python: str) -> str:
    """The numpy version ``python`` imports, or "" without numpy."""
    probe = "import importlib.metadata as m\ntry: print(m.version('numpy'))\nexcept m.PackageNotFoundError: print('')"
    return subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def _environment_of(toolkit) -> str:
    """The virtual environment whose ``train`` the toolkit's command runs."""
    return os.path.dirname(os.path.dirname(toolkit.command[0]))


# What depends on numpy there, but the toolkits themselves (which no index may have).
_NUMPY_USERS = """
import importlib.metadata as m, re
for dist in m.distributions():
    name = dist.metadata["Name"]
    if "sagemaker" not in name and any(re.match(r"numpy\\b", line) for line in dist.requires or ()):
        print(name)
"""


def _templates(toolkits, workdir: str, log) -> Dict[str, str]:
    """A copy of each toolkit's environment, all with the numpy of ours (the image's)."""
    templates = {}
    numpy = _numpy(os.path.join(_environment_of(toolkits[0]), "bin", "python"))
    for toolkit in toolkits:
        template = os.path.join(workdir, f"{toolkit.name}-template")
        shutil.copytree(_environment_of(toolkit), template, symlinks=True)
        python = os.path.join(template, "bin", "python")
        if _numpy(python) != numpy:
            # With what depends on numpy there (the peer's scipy), at versions that work with it.
            users = subprocess.run([python, "-c", _NUMPY_USERS], capture_output=True, text=True).stdout.split()
            log(f"Installing numpy=={numpy} ({', '.join(users)}) into a copy of {toolkit.name}'s environment")
            result = subprocess.run(
                [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"numpy=={numpy}", *users],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise SystemExit(f"pip could not install numpy=={numpy} for {toolkit.name}:\n{result.stderr[-3000:]}")
        templates[toolkit.name] = template
    return templates


def rows(bench, requirements: str, imports: str, repetitions: int, log) -> List[Row]:
    """Cold and warm rows for ``requirements`` (a requirements.txt's text)."""
    workdir = os.path.join(bench.workdir, "requirements")
    os.makedirs(workdir)
    templates = _templates(bench.toolkits, workdir, log)
    caches: Dict[str, Dict[str, str]] = {}
    results: Dict[str, Dict[str, List[measure.Run]]] = {"cold": {}, "warm": {}}
    run_number = 0
    for temperature in ("cold", "warm"):
        for repetition in range(repetitions):
            log(f"requirements, {temperature} caches, {repetition + 1}/{repetitions}")
            for toolkit in bench.toolkits if repetition % 2 == 0 else list(reversed(bench.toolkits)):
                run_number += 1
                if temperature == "cold":
                    # The warm runs reuse the caches the last cold run of the same toolkit filled.
                    cache = os.path.join(workdir, f"cache-{run_number}")
                    caches[toolkit.name] = {"PIP_CACHE_DIR": f"{cache}/pip", "UV_CACHE_DIR": f"{cache}/uv"}
                environment = os.path.join(workdir, f"env-{run_number}")
                shutil.copytree(templates[toolkit.name], environment, symlinks=True)
                try:
                    run = _run(bench, toolkit, environment, requirements, imports, caches[toolkit.name], workdir)
                finally:
                    shutil.rmtree(environment, ignore_errors=True)
                results[temperature].setdefault(toolkit.name, []).append(run)

    other = bench.toolkits[1].name if len(bench.toolkits) > 1 else ""
    found = []
    for temperature in ("cold", "warm"):
        runs = results[temperature]
        label = f"requirements.txt, {temperature} caches"
        found.append(
            Row(
                f"{label}: start -> user's first line",
                "s",
                [run.to_first_line for run in runs.get("ours", [])],
                [run.to_first_line for run in runs.get(other, [])],
                BUDGET,
            )
        )
        found.append(
            Row(
                f"{label}: start -> the user's imports done",
                "s",
                [run.last_line - run.spawn for run in runs.get("ours", [])],
                [run.last_line - run.spawn for run in runs.get(other, [])],
            )
        )
    return found


def _run(bench, toolkit, environment: str, requirements: str, imports: str, caches: dict, workdir: str):
    base = os.path.join(workdir, "job", "opt", "ml")
    jobs.lay_out(
        base,
        {"sagemaker_program": jobs.PROGRAM, "sagemaker_submit_directory": os.path.join(base, "code")},
        code={jobs.PROGRAM: USER_SCRIPT, "requirements.txt": requirements},
    )
    # The copy's console script, run by the copy's interpreter (its shebang names the original):
    # the install goes into the copy.
    command = [os.path.join(environment, "bin", "python"), os.path.join(environment, "bin", "train")]
    environ = {
        **toolkit.environ,
        **caches,
        "SAGEMAKER_BASE_DIR": base,
        "PYTHONDONTWRITEBYTECODE": "1",
        "BENCHMARK_IMPORTS": imports,
    }
    run = measure.run(command, env=environ, cwd=workdir, marker=bench.marker, timeout=1800)
    if run.returncode != 0 or run.first_line is None:
        raise SystemExit(f"{toolkit.name}'s train did not install the requirements:\n{run.output[-3000:]}")
    if toolkit.signature not in run.output:
        raise SystemExit(f"{toolkit.name}'s log lacks {toolkit.signature!r}:\n{run.output[-3000:]}")
    return run

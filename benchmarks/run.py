"""``python -m benchmarks``: this toolkit against the peer, side by side, in one run.

The two toolkits alternate (ours first on even repetitions, the peer first on odd ones) on the
same jobs, the same code tarball and the same local S3 endpoint, so that the noise of a shared
machine falls on both. Every figure is a median with its min-max; the budget is checked on the
medians and any item not met is printed as such.
"""

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Sequence

from benchmarks import hosts, jobs, measure, ours, peer, requirements
from benchmarks.report import Budget, Row, failures, table
from benchmarks.s3_endpoint import Endpoint

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LEGACY_MNIST = os.path.join(REPO, "examples", "mnist", "legacy")
MNIST_SUBSET = os.path.join(REPO, "examples", "mnist", "data")
MIB = 1 / (1024 * 1024)

BUDGET_START = Budget(max_ratio=0.65)
BUDGET_TREE_PSS = Budget(max_ratio=0.5)
BUDGET_WHOLE = Budget(max_ratio=0.6)
BUDGET_AFTER_LAST_LINE = Budget(max_ours=20)  # ms
BUDGET_THROUGHPUT = Budget(min_ratio=0.98)
# Variables of the calling shell that would change what either toolkit does.
_SCRUBBED = re.compile(
    r"^(PYTHONPATH|PYTHONHOME|VIRTUAL_ENV|AWS_.*|SM_.*|SAGEMAKER_.*|S3_ENDPOINT_URL|OMP_.*|MXNET_.*|KMP_.*)$"
)


@dataclass
class Toolkit:
    name: str
    command: List[str]
    environ: Dict[str, str]
    signature: str = ""
    """A line its log must hold: proof that the intended entry ran the job."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clean_environ() -> Dict[str, str]:
    return {key: value for key, value in os.environ.items() if not _SCRUBBED.match(key)}


def development_command() -> List[str]:
    """``train`` of the venv running the benchmark, which has MXNet for the training jobs."""
    script = os.path.join(os.path.dirname(sys.executable), "train")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "sagemaker_mxnet_container"]


def alternate(toolkits: Sequence[Toolkit], repetition: int) -> Sequence[Toolkit]:
    return toolkits if repetition % 2 == 0 else list(reversed(toolkits))


def check(run: measure.Run, what: str) -> measure.Run:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {run.returncode}:\n{run.output[-3000:]}")
    return run


class Bench:
    def __init__(self, args, workdir: str, toolkits: List[Toolkit]):
        self.args = args
        self.workdir = workdir
        self.toolkits = toolkits
        self.marker = os.path.join(workdir, "marker")

    def job(self, name: str, hyperparameters: dict, **layout) -> str:
        base = os.path.join(self.workdir, name, "opt", "ml")
        return jobs.lay_out(base, hyperparameters, **layout)

    def run_job(self, toolkit: Toolkit, base: str, *, sample=False) -> measure.Run:
        run = measure.run(
            toolkit.command,
            env={**toolkit.environ, "SAGEMAKER_BASE_DIR": base},
            cwd=os.path.dirname(os.path.dirname(base)),
            marker=self.marker,
            sample_memory=sample,
        )
        check(run, f"{toolkit.name}'s train for {base}")
        if run.first_line is None:
            raise SystemExit(f"{toolkit.name}'s train exited 0 but the user script never ran:\n{run.output[-3000:]}")
        if toolkit.signature not in run.output:
            raise SystemExit(f"{toolkit.name}'s log lacks {toolkit.signature!r}:\n{run.output[-3000:]}")
        return run


def startup_rows(bench: Bench, uri: str) -> List[Row]:
    """Start-up, whole job, time after the last line, memory; and the floor rows."""
    args = bench.args
    program = {"sagemaker_program": jobs.PROGRAM, "sagemaker_container_log_level": 20}
    s3_job = {**program, "sagemaker_submit_directory": uri}
    results: Dict[str, Dict[str, List[measure.Run]]] = {}

    def s3_base(toolkit):
        return bench.job(f"{toolkit.name}-s3", s3_job)

    def local_base(toolkit):
        base = os.path.join(bench.workdir, f"{toolkit.name}-local", "opt", "ml")
        # As the SDK's local mode does: the code mounted in code/ and named by the submit directory.
        return jobs.lay_out(
            base,
            {**program, "sagemaker_submit_directory": os.path.join(base, "code")},
            code={jobs.PROGRAM: jobs.USER_SCRIPT},
        )

    def memory_base(toolkit):
        return bench.job(f"{toolkit.name}-memory", {**s3_job, "hold": args.hold})

    scenarios = (("s3", s3_base, False), ("local", local_base, False), ("memory", memory_base, True))
    # Byte-compiles both toolkits and warms the page cache; not counted.
    for toolkit in bench.toolkits:
        for _name, layout, _sample in scenarios[:2]:
            bench.run_job(toolkit, layout(toolkit))

    floor_dir = os.path.join(bench.workdir, "floor")
    os.makedirs(floor_dir, exist_ok=True)
    script = os.path.join(floor_dir, jobs.PROGRAM)
    with open(script, "w") as stream:
        stream.write(jobs.USER_SCRIPT)
    floor_env = clean_environ()
    floors: Dict[str, List[measure.Run]] = {"script": [], "boto3": []}

    for repetition in range(args.repetitions):
        log(f"repetition {repetition + 1}/{args.repetitions}")
        for name, layout, sample in scenarios:
            for toolkit in alternate(bench.toolkits, repetition):
                run = bench.run_job(toolkit, layout(toolkit), sample=sample)
                results.setdefault(name, {}).setdefault(toolkit.name, []).append(run)
        floors["script"].append(
            check(measure.run([sys.executable, script], env=floor_env, cwd=floor_dir, marker=bench.marker), "script")
        )
        floors["boto3"].append(
            check(measure.run([sys.executable, "-c", "import boto3"], env=floor_env, cwd=floor_dir), "boto3")
        )

    def values(scenario, toolkit, attribute):
        return [getattr(run, attribute) for run in results[scenario].get(toolkit, [])]

    other = bench.toolkits[1].name if len(bench.toolkits) > 1 else ""
    rows = []
    for scenario, label in (("s3", "code from S3"), ("local", "code in code/")):
        rows.append(
            Row(
                f"start -> user's first line, {label}",
                "ms",
                values(scenario, "ours", "to_first_line"),
                values(scenario, other, "to_first_line"),
                BUDGET_START,
                1000,
            )
        )
    for scenario, label in (("s3", "code from S3"), ("local", "code in code/")):
        rows.append(
            Row(
                f"whole job, {label}",
                "ms",
                values(scenario, "ours", "whole"),
                values(scenario, other, "whole"),
                BUDGET_WHOLE,
                1000,
            )
        )
    for scenario, label in (("s3", "code from S3"), ("local", "code in code/")):
        rows.append(
            Row(
                f"user's last line -> exit, {label}",
                "ms",
                values(scenario, "ours", "after_last_line"),
                values(scenario, other, "after_last_line"),
                BUDGET_AFTER_LAST_LINE,
                1000,
            )
        )
    rows.append(
        Row(
            "peak PSS, toolkit's process tree (user's excluded)",
            "MiB",
            values("memory", "ours", "tree_pss"),
            values("memory", other, "tree_pss"),
            BUDGET_TREE_PSS,
            MIB,
        )
    )
    rows.append(
        Row(
            "peak PSS, toolkit's process alone",
            "MiB",
            values("memory", "ours", "toolkit_pss"),
            values("memory", other, "toolkit_pss"),
            None,
            MIB,
        )
    )
    rows.append(
        Row(
            "peak PSS, the user's script (same for both)",
            "MiB",
            values("memory", "ours", "user_pss"),
            values("memory", other, "user_pss"),
            None,
            MIB,
        )
    )
    rows.append(
        Row(
            "floor: python script.py, start -> first line",
            "ms",
            [r.to_first_line for r in floors["script"]],
            scale=1000,
        )
    )
    rows.append(Row("floor: python script.py, whole", "ms", [r.whole for r in floors["script"]], scale=1000))
    rows.append(
        Row(
            "floor: python script.py, last line -> exit",
            "ms",
            [r.after_last_line for r in floors["script"]],
            scale=1000,
        )
    )
    rows.append(Row('floor: python -c "import boto3", whole', "ms", [r.whole for r in floors["boto3"]], scale=1000))
    return rows


_EPOCH = re.compile(r"Epoch\[(\d+)\] Time cost=([0-9.]+)")


def samples_per_second(output: str, samples: int) -> float:
    costs = [float(cost) for _epoch, cost in _EPOCH.findall(output)]
    if not costs:
        raise SystemExit(f"no 'Epoch[n] Time cost' lines in the training output:\n{output[-3000:]}")
    return samples * len(costs) / sum(costs)


def count_samples(channel: str) -> int:
    for root, _dirs, files in os.walk(channel):
        if "labels.gz" in files:
            with gzip.open(os.path.join(root, "labels.gz"), "rb") as stream:
                return struct.unpack(">II", stream.read(8))[1]
    raise SystemExit(f"no labels.gz under {channel}")


def training_rows(bench: Bench) -> List[Row]:
    """The legacy MNIST example through ``train`` against its train() called by a bare script."""
    args = bench.args
    # The development venv's train: the user's process needs MXNet.
    trainer = Toolkit("ours", development_command(), bench.toolkits[0].environ)
    channels = {name: os.path.join(args.mnist, name) for name in ("train", "test")}
    samples = count_samples(channels["train"])
    cpus = str(len(os.sched_getaffinity(0)))
    bare_env = clean_environ()
    through: List[measure.Run] = []
    bare: List[measure.Run] = []
    bare_same_threads: List[measure.Run] = []

    def run_through():
        base = bench.job(
            "mnist",
            {"sagemaker_program": "mnist.py", "epochs": args.epochs},
            code_from=LEGACY_MNIST,
            channels=channels,
        )
        through.append(
            check(
                measure.run(trainer.command, env={**trainer.environ, "SAGEMAKER_BASE_DIR": base}, cwd=bench.workdir),
                "legacy MNIST through train",
            )
        )

    def run_bare(target, extra):
        model_dir = os.path.join(bench.workdir, "bare-model")
        shutil.rmtree(model_dir, ignore_errors=True)
        command = [
            sys.executable,
            os.path.join(HERE, "bare_legacy.py"),
            os.path.join(LEGACY_MNIST, "mnist.py"),
            channels["train"],
            channels["test"],
            str(args.epochs),
            model_dir,
        ]
        target.append(check(measure.run(command, env={**bare_env, **extra}, cwd=bench.workdir), "bare legacy MNIST"))

    steps = [run_through, lambda: run_bare(bare, {}), lambda: run_bare(bare_same_threads, {"OMP_NUM_THREADS": cpus})]
    for repetition in range(args.training_repetitions):
        log(f"training {repetition + 1}/{args.training_repetitions}")
        for step in steps if repetition % 2 == 0 else reversed(steps):
            step()

    def rate(runs):
        return [samples_per_second(run.output, samples) for run in runs]

    label = f"legacy MNIST, {samples} samples x {args.epochs} epochs"
    return [
        Row(
            f"{label}: samples/s, train vs bare (OMP_NUM_THREADS={cpus} in both)",
            "samples/s",
            rate(through),
            rate(bare_same_threads),
            BUDGET_THROUGHPUT,
        ),
        Row(
            f"{label}: wall time, train vs bare (OMP_NUM_THREADS={cpus} in both)",
            "s",
            [r.whole for r in through],
            [r.whole for r in bare_same_threads],
        ),
        Row(f"{label}: samples/s, train vs bare with MXNet's default threads", "samples/s", rate(through), rate(bare)),
        Row(
            f"{label}: wall time, train vs bare with MXNet's default threads",
            "s",
            [r.whole for r in through],
            [r.whole for r in bare],
        ),
    ]


def thread_rows(bench: Bench) -> List[str]:
    """What MXNet and OpenMP use in the user's process, with every CPU and with taskset -c 0."""
    report_path = os.path.join(bench.workdir, "threads.json")
    code = {"thread_probe.py": open(os.path.join(HERE, "thread_probe.py")).read()}
    lines = [
        "| CPUs given (taskset) | toolkit | usable CPUs seen | OMP_NUM_THREADS | OpenMP threads in MXNet | "
        "OS threads after a convolution |",
        "|---|---|---|---|---|---|",
    ]
    all_cpus = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    for cpu_list in (all_cpus, "0"):
        for toolkit in bench.toolkits:
            base = os.path.join(bench.workdir, f"threads-{toolkit.name}", "opt", "ml")
            jobs.lay_out(
                base,
                {"sagemaker_program": "thread_probe.py", "sagemaker_submit_directory": os.path.join(base, "code")},
                code=code,
            )
            if os.path.exists(report_path):
                os.unlink(report_path)
            env = {
                **toolkit.environ,
                "SAGEMAKER_BASE_DIR": base,
                "BENCHMARK_REPORT": report_path,
                "BENCHMARK_MXNET_PYTHON": sys.executable,
            }
            run = check(
                measure.run(["taskset", "-c", cpu_list, *toolkit.command], env=env, cwd=bench.workdir),
                f"thread probe through {toolkit.name}",
            )
            try:
                with open(report_path) as stream:
                    found = json.load(stream)
            except (OSError, ValueError):
                raise SystemExit(
                    f"the thread probe wrote no report through {toolkit.name}:\n{run.output[-3000:]}"
                ) from None
            lines.append(
                f"| {cpu_list} | {toolkit.name} | {found['cpus']} | {found['OMP_NUM_THREADS']} | "
                f"{found['omp_max_threads']} | {found['os_threads']} |"
            )
    return lines


def thread_effect_rows(bench: Bench) -> List[Row]:
    """Legacy MNIST on one CPU: the threads train chooses against the host's total forced on it."""
    args = bench.args
    # The development venv's train: the user's process needs MXNet.
    trainer = Toolkit("ours", development_command(), bench.toolkits[0].environ)
    channels = {name: os.path.join(args.mnist, name) for name in ("train", "test")}
    samples = count_samples(channels["train"])
    host_total = str(os.cpu_count())
    chosen, forced = [], []
    for repetition in range(args.training_repetitions):
        for target, extra in ((chosen, {}), (forced, {"OMP_NUM_THREADS": host_total}))[
            :: 1 if repetition % 2 == 0 else -1
        ]:
            base = bench.job(
                "mnist-taskset",
                {"sagemaker_program": "mnist.py", "epochs": args.epochs},
                code_from=LEGACY_MNIST,
                channels=channels,
            )
            env = {**trainer.environ, "SAGEMAKER_BASE_DIR": base, **extra}
            target.append(
                check(
                    measure.run(["taskset", "-c", "0", *trainer.command], env=env, cwd=bench.workdir),
                    "legacy MNIST under taskset",
                )
            )
    return [
        Row(
            f"legacy MNIST on 1 CPU (taskset -c 0): samples/s, threads train chooses vs OMP_NUM_THREADS="
            f"{host_total} (the host's total)",
            "samples/s",
            [samples_per_second(r.output, samples) for r in chosen],
            [samples_per_second(r.output, samples) for r in forced],
        )
    ]


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{model}; {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable); {memory:.0f} GiB; "
        f"Linux {platform.release()}; Python {platform.python_version()}"
    )


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=10, help="runs of each start-up job per toolkit")
    parser.add_argument("--training-repetitions", type=int, default=5, help="runs of each MNIST training")
    parser.add_argument("--epochs", type=int, default=3, help="MNIST epochs per training run")
    parser.add_argument("--mnist", default=MNIST_SUBSET, help="MNIST directory with train/ and test/")
    parser.add_argument("--hold", type=float, default=0.5, help="seconds the user script runs in the memory runs")
    parser.add_argument("--peer-venv", default=peer.DEFAULT_DIR, help="the peer's virtual environment")
    parser.add_argument("--no-peer", action="store_true", help="measure ours and the floors only")
    parser.add_argument("--skip-training", action="store_true", help="leave out the MNIST and thread sections")
    parser.add_argument("--skip-requirements", action="store_true", help="leave out the requirements.txt rows")
    parser.add_argument(
        "--botocore-s3-model",
        action="store_true",
        help="do not cut botocore's S3 model for ours (as an image built without that step)",
    )
    parser.add_argument(
        "--requirements-file",
        help="the requirements.txt both toolkits install (default: gluoncv, pandas, scikit-learn, "
        "opencv-python-headless, numpy<1.24, whose imports the user script then times)",
    )
    parser.add_argument(
        "--requirements-repetitions", type=int, default=3, help="installs per toolkit with cold caches, and warm"
    )
    parser.add_argument("--ours-source", default=REPO, help="the checkout to install and measure as ours")
    parser.add_argument("--ours-venv", default=ours.DEFAULT_DIR, help="where ours is installed as a wheel")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    # First of all: a process with threads cannot enter a mount namespace of its own.
    if not args.no_peer:
        hosts.name_host()
    base_env = clean_environ()
    toolkits = [
        Toolkit(
            "ours",
            [ours.install(args.ours_source, args.ours_venv, log=log, cut_s3_model=not args.botocore_s3_model)],
            dict(base_env),
            "Training succeeded",
        )
    ]
    peer_versions = None
    if not args.no_peer:
        found = peer.ensure(args.peer_venv, log=log)
        peer_versions = found.versions
        toolkits.append(
            Toolkit(
                "peer", [found.train], {**base_env, **found.environ()}, f"Imported framework {peer.TRAINING_PACKAGE}"
            )
        )

    workdir = tempfile.mkdtemp(prefix="benchmark-")
    try:
        with Endpoint() as s3:
            for toolkit in toolkits:
                toolkit.environ.update(s3.environ())
            tarball = jobs.source_tarball({jobs.PROGRAM: jobs.USER_SCRIPT})
            uri = s3.put("benchmark-code", "job/source/sourcedir.tar.gz", tarball)
            bench = Bench(args, workdir, toolkits)
            rows = startup_rows(bench, uri)
            installs = []
            if not args.skip_requirements:
                if args.requirements_file:
                    with open(args.requirements_file) as stream:
                        text, imports = stream.read(), ""
                else:
                    text, imports = requirements.TYPICAL, requirements.TYPICAL_IMPORTS
                installs = requirements.rows(bench, text, imports, args.requirements_repetitions, log)
            training, effect, threads = [], [], []
            if not args.skip_training:
                training = training_rows(bench)
                threads = thread_rows(bench)
                effect = thread_effect_rows(bench)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Machine: {machine()}")
    peer_name = (
        "peer"
        if peer_versions is None
        else (
            f"peer (sagemaker-mxnet-training {peer_versions['sagemaker-mxnet-training']}, "
            f"sagemaker-training {peer_versions['sagemaker-training']})"
        )
    )
    print(f"Ours: {' '.join(toolkits[0].command)}; {peer_name}; {args.repetitions} repetitions, alternating\n")
    print(table("Start-up, whole job, memory (script mode, same job and code tarball)", rows, "peer"))
    checked = list(rows)
    if installs:
        print()
        title = "Installing requirements.txt (each toolkit into a fresh copy of its environment)"
        print(table(title, installs, "peer"))
        checked += installs
    if training:
        print()
        print(
            table(
                "Training overhead (ours through train vs the same train() called by a bare script)", training, "bare"
            )
        )
        checked += training
    if threads:
        print("\n### Threads in the user's process\n")
        print("\n".join(threads))
        print()
        print(table("Effect of the thread setting on one CPU", effect, "forced"))
    missed = failures(checked)
    print()
    if missed:
        for row in missed:
            print(f"BUDGET NOT MET: {row.label}: {row.budget.describe(row.unit)}, measured {row.measured()}")
    else:
        print(
            "Every budget item is met."
            if len(toolkits) > 1
            else "Budget items against the peer not checked (--no-peer)."
        )
    return 0

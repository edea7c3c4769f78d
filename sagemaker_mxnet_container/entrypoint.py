"""``train``: one SageMaker MXNet training job, from configuration to outcome.

The flow runs one way: read the configuration into immutable values, get the code, install
its requirements, choose devices and kvstore, run the user's code under supervision, record
the outcome. The supervisor imports neither MXNet nor boto3: they load in the child processes
that need them.
"""

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile

from sagemaker_mxnet_container import (
    cluster,
    code,
    environment,
    error_record,
    logs,
    metrics,
    mxnet_settings,
    outcome,
    program,
    reference,
    requirements,
    resources,
    settings,
    sm_variables,
)
from sagemaker_mxnet_container.errors import (
    Aborted,
    ConfigurationError,
    Stopped,
    ToolkitError,
    UserCodeError,
    describe_os_error,
)
from sagemaker_mxnet_container.horovod import launch as horovod_launch
from sagemaker_mxnet_container.horovod import settings as horovod_settings
from sagemaker_mxnet_container.runner import Supervisor

logger = logging.getLogger(__name__)


def run_job(paths: environment.Paths, supervisor: Supervisor) -> None:
    """Runs the job; raises ToolkitError (or a subclass) with the failure reason."""
    operator = settings.read()
    if operator.cgroup == "auto":
        supervisor.confine()
    env = environment.read(paths)
    logs.configure(env.log_level)
    logs.use_secrets_of(env.hyperparameters)
    # Hyperparameters no process could receive fail now, not after the download and pip.
    sm_variables.check(env.hyperparameters, env.channels)
    supervisor.stop_grace_seconds = env.stop_grace_seconds
    for key in env.ignored_parameters:
        logger.warning("Ignoring hyperparameter %s: this image does not use it", key)
    with cluster.join(env, operator, supervisor) as job:
        _run_on_this_host(env, job, supervisor)


def _run_on_this_host(env: environment.TrainingEnvironment, job: cluster.Cluster, supervisor: Supervisor) -> None:
    paths = env.paths
    code_dir = code.fetch(env, job.settings, supervisor)
    user_program = program.choose(code_dir, env.program, env.mode)
    requirements.install(code_dir, supervisor, user_program.path, job.settings.installer)
    found = resources.detect()
    horovod = horovod_settings.read(env.framework_parameters, found.num_gpus, found.num_cpus)
    # Horovod's ranks exchange gradients themselves; a parameter server beside them would idle.
    parameter_server = horovod is None and cluster.uses_parameter_server(env, user_program.mode == program.LEGACY)
    chosen = mxnet_settings.choose(len(env.hosts), found.num_gpus, env.kvstore, parameter_server)
    logger.info(
        "Running %s in %s mode (%s); context %s, kvstore %s",
        os.path.relpath(user_program.path, code_dir),
        user_program.mode,
        user_program.reason,
        chosen.context_string,
        chosen.kvstore,
    )
    _make_directories(paths.model_dir, paths.output_data_dir, paths.output_intermediate_dir)

    training = sm_variables.training_env(env, found, chosen)
    child_env = dict(os.environ)
    child_env.update(sm_variables.variables(training, env, code_dir))
    if parameter_server:
        # As the official MXNet toolkit exports it to the scheduler, the servers and the worker.
        child_env["PS_VERBOSE"] = env.cluster.parameter_server_verbose
    name = os.path.basename(user_program.path)

    recording = metrics.Recording(paths.output_data_dir, paths.output_dir)
    if horovod is not None:
        _run_horovod(env, job, supervisor, horovod, user_program, child_env, code_dir, found.num_cpus, recording)
        return
    servers = (
        cluster.parameter_server(job, supervisor, child_env, code_dir)
        if parameter_server
        else contextlib.nullcontext({})
    )
    with servers as worker_variables:
        child_env.update(worker_variables)
        if user_program.mode == program.LEGACY:
            result, reason = _run_legacy(supervisor, user_program, child_env, code_dir, recording.collector)
        else:
            arguments = sm_variables.user_arguments(env.hyperparameters)
            command = program.script_command(user_program, code_dir, arguments)
            if parameter_server:
                command = program.as_ps_worker(command)
            result = supervisor.run(command, env=child_env, cwd=code_dir, observer=recording.collector)
            reason = outcome.script_failure(name, result) if result.exit_code else None
        recording.finish(supervisor)
        _check_outcome(paths, supervisor, name, result, reason)
        job.finish(supervisor)


def _make_directories(*directories: str) -> None:
    """The directories the user's code writes to; one that cannot be made fails the job naming it."""
    for directory in directories:
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocking = next(
                (
                    path
                    for path in (os.path.dirname(directory), directory)
                    if os.path.lexists(path) and not os.path.isdir(path)
                ),
                directory,
            )
            raise ToolkitError(
                f"{blocking} is a file, but the job needs it as a directory (the user's code writes to "
                f"{directory}); remove it, or what put it there"
            ) from None
        except OSError as error:
            raise ToolkitError(f"cannot create {directory}: {describe_os_error(error)}") from None


def _run_horovod(
    env: environment.TrainingEnvironment,
    job: cluster.Cluster,
    supervisor: Supervisor,
    horovod: horovod_settings.HorovodSettings,
    user_program: program.Program,
    child_env: dict,
    code_dir: str,
    num_cpus: int,
    recording: metrics.Recording,
) -> None:
    """Runs the user's program as this host's Horovod ranks, until every host has finished."""
    if user_program.mode == program.LEGACY:
        raise ConfigurationError(
            "sagemaker_mpi_enabled runs the entry point once per Horovod rank, as a program, but "
            f"{os.path.basename(user_program.path)} is a legacy-mode module ({user_program.reason}); "
            "give it an if __name__ == '__main__': block, or set sagemaker_mode to script"
        )
    name = os.path.basename(user_program.path)
    command = program.script_command(user_program, code_dir, sm_variables.user_arguments(env.hyperparameters))
    with horovod_launch.launch(job, supervisor, horovod, child_env, code_dir) as launcher:
        result, reason = launcher.run(command, name, num_cpus, recording.collector)
        if result is not None:
            recording.finish(supervisor)
            _check_outcome(env.paths, supervisor, name, result, reason)
        job.finish(supervisor)


def _check_outcome(paths: environment.Paths, supervisor: Supervisor, name: str, result, reason) -> None:
    if supervisor.stop_signal is not None:
        signal_name = signal.Signals(supervisor.stop_signal).name
        raise Stopped(
            f"Training job stopped: {signal_name} received while the user's code ran; "
            f"{outcome.exit_description(name, result)}.",
            supervisor.stop_signal,
        )
    if supervisor.abort_reason is not None:
        raise Aborted(supervisor.abort_reason)
    if result.exit_code != 0:
        raise UserCodeError(reason, result.exit_code)
    left = outcome.left_failure(paths)
    if left is not None:
        raise UserCodeError(outcome.left_failure_reason(paths, name, left), 1)


def _run_legacy(
    supervisor: Supervisor, user_program: program.Program, child_env: dict, code_dir: str, observer
):
    """Runs the legacy runner in a child; returns its result and, if it failed, the reason."""
    with tempfile.TemporaryDirectory(prefix="mxnet-legacy-") as scratch:
        record_path = os.path.join(scratch, "error.json")
        child_env = {**child_env, error_record.FILE_VARIABLE: record_path}
        result = supervisor.run(program.legacy_command(user_program), env=child_env, cwd=code_dir, observer=observer)
        record = error_record.read(record_path) if result.exit_code else None
    name = os.path.basename(user_program.path)
    return result, (outcome.legacy_failure(name, result, record) if result.exit_code else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="train",
        description="Run the SageMaker MXNet training job configured under $SAGEMAKER_BASE_DIR (default /opt/ml).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("-h", "--help", action=_Help, nargs=0, help="show this reference and exit")
    parser.parse_args(argv)

    logs.configure()
    paths = environment.Paths.from_environ()
    supervisor = Supervisor()
    try:
        supervisor.install()
        outcome.clear(paths)
        try:
            run_job(paths, supervisor)
        finally:
            # From here a stop signal can no longer interrupt anything; recording must finish.
            supervisor.close()
            supervisor.end_all()
    except Exception as error:
        error = _as_stop(error, supervisor)
        if isinstance(error, ToolkitError):
            logger.error("Training failed: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
        else:
            logger.exception("Internal error")
            error = ToolkitError(f"Internal error in sagemaker-mxnet-container: {type(error).__name__}: {error}")
        _record_failure(paths, str(error))
        return error.exit_code
    try:
        outcome.record_success(paths)
    except (OSError, ToolkitError) as error:
        # Without output/success the platform cannot count the job as a success.
        reason = f"Training finished but {paths.output_dir}/success could not be written: " + (
            describe_os_error(error) if isinstance(error, OSError) else str(error)
        )
        logger.error("%s", reason)
        _record_failure(paths, reason)
        return 1
    logger.info("Training succeeded")
    return 0


class _Help(argparse.Action):
    """``--help``: in a container, the reference a person has at hand (the README's tables, as
    text), rendered only when asked for, off every job's start."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = reference.help_text()
        parser.print_help()
        parser.exit()


def _as_stop(error: Exception, supervisor: Supervisor) -> Exception:
    """A step that failed because a stop signal or an abort ended it (pip, the download) was
    stopped or aborted, not broken: the failure names the cause, not the step's complaint."""
    if isinstance(error, (Stopped, Aborted)):
        return error
    if supervisor.stop_signal is not None:
        signal_name = signal.Signals(supervisor.stop_signal).name
        message = f"Training job stopped: {signal_name} received. The step it ended reported: {error}"
        return Stopped(message, supervisor.stop_signal)
    if supervisor.abort_reason is not None:
        return Aborted(supervisor.abort_reason)
    return error


def _record_failure(paths: environment.Paths, reason: str) -> None:
    try:
        outcome.record_failure(paths, reason)
    except OSError as error:
        logger.error("Could not write %s/failure: %s", paths.output_dir, error)


def run() -> None:
    """``train`` and ``python -m sagemaker_mxnet_container``: main(), then exit at once.

    Tearing the interpreter down after a job takes tens of milliseconds, all of them after the
    user's code has finished. The outcome is recorded and its files closed by now, so the process
    ends without it; main() itself returns, for callers in the same process.
    """
    exit_code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


if __name__ == "__main__":
    run()

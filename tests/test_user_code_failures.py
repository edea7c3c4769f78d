"""How the user's code fails, seen from outside: the real ``train``'s exit code and the reason it
writes to ``output/failure`` (whose first 1024 characters the platform shows as FailureReason)."""

import json
import os

import pytest

from sagemaker_mxnet_container import resources

REASON_SHOWN = 1024


def first_line(text: str) -> str:
    return text.splitlines()[0]


# Script mode


def test_exception_comes_first_and_names_the_program_and_exit_code(code_job, run_train):
    job = code_job(
        """
        if __name__ == "__main__":
            raise ValueError("learning rate must be positive")
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert job.failure.startswith("ValueError: learning rate must be positive\n")
    assert "train.py exited with code 1" in job.failure
    assert not job.succeeded


def test_every_line_of_a_multi_line_exception_message_is_kept(code_job, run_train):
    job = code_job(
        """
        raise RuntimeError("shape mismatch in layer dense0\\nexpected (64, 784)\\ngot (64, 28, 28)")
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert job.failure.startswith(
        "RuntimeError: shape mismatch in layer dense0\nexpected (64, 784)\ngot (64, 28, 28)\n"
    )


def test_a_syntax_error_in_the_program_is_the_reason(code_job, run_train):
    job = code_job("print('epochs'\n")
    run = run_train(job)
    assert run.returncode == 1
    assert first_line(job.failure).startswith("SyntaxError: "), job.failure


def test_sys_exit_code_is_the_jobs_and_the_reason_shows_the_last_stderr_lines(code_job, run_train):
    job = code_job(
        """
        import sys
        print("epoch 4: loss is nan, stopping", file=sys.stderr)
        sys.exit(3)
        """
    )
    run = run_train(job)
    assert run.returncode == 3
    assert job.failure.startswith("train.py exited with code 3.")
    assert "epoch 4: loss is nan, stopping" in job.failure


def test_os_exit_code_is_the_jobs(code_job, run_train):
    job = code_job("import os\nos._exit(7)\n")
    run = run_train(job)
    assert run.returncode == 7
    assert "train.py exited with code 7" in job.failure
    assert "It wrote nothing to stderr." in job.failure


def test_a_program_killed_by_sigkill_ends_the_job_with_137_and_mentions_memory(code_job, run_train):
    job = code_job("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    run = run_train(job)
    assert run.returncode == 137
    assert "train.py was killed by SIGKILL (exit code 137)" in job.failure
    assert "out of memory" in job.failure


def test_a_program_killed_by_sigsegv_ends_the_job_with_139(code_job, run_train):
    job = code_job(
        """
        import os, resource, signal
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)
        """
    )
    run = run_train(job)
    assert run.returncode == 139
    assert "train.py was killed by SIGSEGV (exit code 139)" in job.failure
    assert "memory" not in job.failure


def test_a_failure_the_program_wrote_itself_comes_before_ours(code_job, run_train):
    job = code_job(
        """
        import os, sys
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as stream:
            stream.write("Validation accuracy 0.41 is below the required 0.90")
        sys.exit(1)
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    user, _, ours = job.failure.partition("\n\n")
    assert user == "Validation accuracy 0.41 is below the required 0.90"
    assert "train.py exited with code 1" in ours


def test_a_program_that_wrote_a_failure_but_exited_0_fails_the_job(code_job, run_train):
    job = code_job(
        """
        import os
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as stream:
            stream.write("dataset was empty")
        """
    )
    run = run_train(job)
    assert run.returncode != 0
    assert not job.succeeded
    assert job.failure.startswith("dataset was empty\n\n")
    assert "exited with code 0 but wrote" in job.failure


def test_a_program_that_succeeds_leaves_success_and_no_failure(code_job, run_train):
    job = code_job(
        """
        import os
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as stream:
            stream.write("weights")
        """
    )
    run = run_train(job)
    assert run.returncode == 0, run.stderr
    assert job.succeeded
    assert job.failure is None
    assert (job.model_dir / "model.txt").read_text() == "weights"


def test_a_previous_runs_outcome_is_replaced(code_job, run_train):
    job = code_job("raise SystemExit(2)\n")
    job.output_dir.mkdir()
    (job.output_dir / "success").write_text("")
    (job.output_dir / "failure").write_text("stale failure from the last run")
    run = run_train(job)
    assert run.returncode == 2
    assert not job.succeeded
    assert "stale failure" not in job.failure


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            """
            import sys
            for step in range(10000):
                print(f"step {step}: loss 0.{step:04d} " + "x" * 60, file=sys.stderr)
            raise ValueError("learning rate must be positive")
            """,
            id="script",
        ),
        pytest.param(
            """
            import sys
            def train():
                for step in range(10000):
                    print(f"step {step}: loss 0.{step:04d} " + "x" * 60, file=sys.stderr)
                raise ValueError("learning rate must be positive")
            """,
            id="legacy",
        ),
    ],
)
def test_the_exception_is_shown_even_after_10000_lines_of_stderr(code_job, run_train, source):
    job = code_job(source)
    run = run_train(job)
    assert run.returncode == 1
    assert "ValueError: learning rate must be positive" in job.failure[:REASON_SHOWN]


# Legacy mode: train() is imported and called by the toolkit, and errors come back as a record.


def test_legacy_train_raising_puts_its_exception_first_and_names_train(code_job, run_train):
    job = code_job(
        """
        def train(hyperparameters):
            raise ValueError("batch_size must be at least 1, got 0")
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert first_line(job.failure) == "ValueError: batch_size must be at least 1, got 0"
    assert "running train() in train.py" in job.failure


def test_legacy_train_raising_key_error(code_job, run_train):
    job = code_job(
        """
        def train(hyperparameters):
            return hyperparameters["learning_rate"]
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert first_line(job.failure) == "KeyError: 'learning_rate'"
    assert "running train() in train.py" in job.failure


def test_legacy_module_failing_at_import_names_importing(code_job, run_train):
    job = code_job(
        """
        import gluoncv_is_not_installed_here

        def train():
            pass
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert first_line(job.failure) == "ModuleNotFoundError: No module named 'gluoncv_is_not_installed_here'"
    assert "importing train.py" in job.failure


def test_legacy_train_requiring_arguments_it_is_not_given_is_explained(code_job, run_train):
    job = code_job(
        """
        def train(batch_size, epochs):
            pass

        if __name__ == "__main__":
            train(64, 10)
        """,
        {"sagemaker_mode": "legacy"},
    )
    run = run_train(job)
    assert run.returncode == 1
    reason = first_line(job.failure)
    assert "train() requires batch_size, epochs, which legacy mode does not pass" in reason
    assert "sagemaker_mode" in reason


def test_legacy_train_returning_none_succeeds_and_saves_nothing(code_job, run_train):
    job = code_job(
        """
        def train(model_dir):
            return None
        """
    )
    run = run_train(job)
    assert run.returncode == 0, run.stderr
    assert job.succeeded and job.failure is None
    assert list(job.model_dir.iterdir()) == []


def test_legacy_train_returning_what_cannot_be_saved_says_what_to_return(code_job, run_train):
    job = code_job(
        """
        def train():
            return {"weights": [0.1, 0.2]}
        """
    )
    run = run_train(job)
    assert run.returncode == 1
    assert first_line(job.failure).startswith("TypeError: cannot save a builtins.dict")
    assert "return an mx.mod.Module or a hybridized gluon.HybridBlock" in job.failure
    assert "define save(model, model_dir)" in job.failure
    assert "saving the model" in job.failure
    assert not job.succeeded


def test_legacy_modules_own_save_is_called_with_the_model_and_model_dir(code_job, run_train):
    job = code_job(
        """
        import json, os

        def train():
            return {"weights": [0.1, 0.2]}

        def save(model, model_dir):
            with open(os.path.join(model_dir, "model.json"), "w") as stream:
                json.dump(model, stream)
        """
    )
    run = run_train(job)
    assert run.returncode == 0, run.stderr
    assert json.loads((job.model_dir / "model.json").read_text()) == {"weights": [0.1, 0.2]}
    assert job.succeeded


def test_legacy_train_with_kwargs_receives_every_documented_argument(code_job, run_train, tmp_path):
    data = tmp_path / "train-data"
    data.mkdir()
    (data / "part-0").write_text("1,2,3\n")
    job = code_job(
        """
        import json, os

        def train(**kwargs):
            kwargs["context"] = str(kwargs["context"])
            with open(os.path.join(kwargs["output_data_dir"], "kwargs.json"), "w") as stream:
                json.dump(kwargs, stream)
        """,
        {"batch_size": 64, "optimizer": "sgd"},
        channels={"training": data},
    )
    run = run_train(job)
    assert run.returncode == 0, run.stderr
    received = json.loads((job.output_dir / "data" / "kwargs.json").read_text())
    num_gpus = resources.count_gpus()
    assert received == {
        "hyperparameters": {"batch_size": 64, "optimizer": "sgd"},
        "input_data_config": {"training": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}},
        "channel_input_dirs": {"training": str(job.channel("training"))},
        "output_data_dir": str(job.output_dir / "data"),
        "model_dir": str(job.model_dir),
        "num_gpus": num_gpus,
        "num_cpus": resources.count_cpus(),
        "hosts": ["algo-1"],
        "current_host": "algo-1",
        "context": "[cpu(0)]" if num_gpus == 0 else str([f"gpu({i})" for i in range(num_gpus)]).replace("'", ""),
        "kvstore": "local" if num_gpus <= 1 else "device",
    }
    assert os.path.isdir(received["channel_input_dirs"]["training"])


def test_an_entry_point_that_cannot_be_executed_is_a_clear_failure(make_job, run_train):
    job = make_job({"sagemaker_program": "train"})
    job.code_dir.mkdir()
    program = job.code_dir / "train"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)

    run = run_train(job)

    assert run.returncode == 1
    assert job.failure.startswith(
        f"cannot start {program}: its #! line names /nonexistent/interpreter, which is not an executable in the "
        "image (No such file or directory)"
    )

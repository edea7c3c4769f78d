"""program: locating the entry point, choosing legacy or script mode, and the command that runs it."""

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sagemaker_mxnet_container import program
from sagemaker_mxnet_container.errors import CodeError
from sagemaker_mxnet_container.program import LEGACY, SCRIPT, Program, detect_mode, locate, script_command

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "mnist"


@pytest.fixture
def code_dir(tmp_path):
    directory = tmp_path / "code"
    directory.mkdir()
    return directory


def write(directory, name: str, source: str = "") -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path)


def locate_error(code_dir, name) -> str:
    with pytest.raises(CodeError) as caught:
        locate(str(code_dir), name)
    return str(caught.value)


# --- locate -----------------------------------------------------------------------------------


def test_locate_finds_the_entry_point(code_dir):
    path = write(code_dir, "train.py")

    assert locate(str(code_dir), "train.py") == path


def test_locate_finds_an_entry_point_in_a_subdirectory(code_dir):
    path = write(code_dir, "src/train.py")

    assert locate(str(code_dir), "src/train.py") == path


def test_a_missing_entry_point_is_named_and_the_directory_listed(code_dir):
    write(code_dir, "model.py")
    write(code_dir, "utils.py")
    write(code_dir, ".hidden")

    message = locate_error(code_dir, "train.py")

    assert "entry point 'train.py' not found" in message
    assert str(code_dir) in message
    assert "(it holds: model.py, utils.py)" in message
    assert ".hidden" not in message


def test_a_missing_entry_point_in_an_empty_directory_says_so(code_dir):
    assert "(it holds: nothing)" in locate_error(code_dir, "train.py")


def test_a_long_listing_is_cut_short(code_dir):
    for index in range(25):
        write(code_dir, f"file{index:02d}.py")

    message = locate_error(code_dir, "train.py")

    assert "file19.py, ..." in message
    assert "file20.py" not in message


def test_a_directory_is_not_an_entry_point(code_dir):
    (code_dir / "src").mkdir()

    assert "'src' is a directory" in locate_error(code_dir, "src")


@pytest.mark.parametrize("name", ["../x.py", "src/../../x.py", ".."])
def test_an_entry_point_outside_the_code_dir_is_refused(code_dir, name):
    # The file exists, so only the containment check can refuse it.
    write(code_dir.parent, "x.py", "print('outside')")

    assert "points outside the code directory" in locate_error(code_dir, name)


def test_a_symlink_out_of_the_code_dir_is_refused(code_dir):
    target = write(code_dir.parent, "elsewhere.py")
    (code_dir / "train.py").symlink_to(target)

    assert "points outside the code directory" in locate_error(code_dir, "train.py")


def test_a_symlinked_entry_point_keeps_its_own_name(code_dir):
    # The module name comes from the path; the resolved one would be "impl_v2", not "train".
    write(code_dir, "impl_v2.py")
    (code_dir / "train.py").symlink_to(code_dir / "impl_v2.py")

    path = locate(str(code_dir), "train.py")

    assert path == str(code_dir / "train.py")
    assert Program(path, "train.py", SCRIPT, "").module_name == "train"


def test_an_absolute_entry_point_is_refused_even_inside_the_code_dir(code_dir):
    path = write(code_dir, "train.py")

    assert "is an absolute path" in locate_error(code_dir, path)
    assert "is an absolute path" in locate_error(code_dir, "/etc/hostname")


@pytest.mark.parametrize("name", [None, ""])
def test_an_unset_sagemaker_program_says_what_to_set(code_dir, name):
    message = locate_error(code_dir, name)

    assert "sagemaker_program is not set" in message


# --- detect_mode ------------------------------------------------------------------------------

SHAPES = {
    "legacy signature, no main block": (
        LEGACY,
        """
        import os

        def train(hyperparameters, channel_input_dirs, num_gpus, hosts, current_host, **_):
            return None

        def save(model, model_dir):
            pass
        """,
    ),
    "legacy with **kwargs": (
        LEGACY,
        """
        def train(**kwargs):
            return kwargs["hyperparameters"]
        """,
    ),
    "legacy with top-level setup code": (
        LEGACY,
        """
        import logging
        logging.basicConfig(level=logging.INFO)
        SEED = 42

        def train(hyperparameters, model_dir):
            return None
        """,
    ),
    "script with its own train() under a main block": (
        SCRIPT,
        """
        import argparse

        def train(batch_size, epochs):
            print(batch_size, epochs)

        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--batch-size", type=int)
            parser.add_argument("--epochs", type=int)
            args = parser.parse_args()
            train(args.batch_size, args.epochs)
        """,
    ),
    "reversed main block": (
        SCRIPT,
        """
        def train(**kwargs):
            pass

        if "__main__" == __name__:
            train()
        """,
    ),
    "main block with single quotes and an else": (
        SCRIPT,
        """
        def train(hyperparameters):
            pass

        if __name__ == '__main__':
            train({})
        else:
            pass
        """,
    ),
    "plain top-level script without train": (
        SCRIPT,
        """
        import os
        print(os.environ["SM_MODEL_DIR"])
        """,
    ),
    "script that calls its train() at the top level without a main block": (
        SCRIPT,
        """
        import argparse

        def train(args):
            print(args)

        args = argparse.ArgumentParser().parse_args()
        train(args)
        """,
    ),
    "script that assigns train()'s result at the top level": (
        SCRIPT,
        """
        def train():
            return 1

        model = train()
        """,
    ),
    "a guard against running as a script is not a main block": (
        LEGACY,
        """
        if __name__ != "__main__":
            import logging

        def train(hyperparameters):
            pass
        """,
    ),
    "syntax error": (
        SCRIPT,
        """
        def train(hyperparameters:
            pass
        """,
    ),
    "empty file": (SCRIPT, ""),
    "train is a class, not a function": (
        SCRIPT,
        """
        class train:
            pass
        """,
    ),
    "async train": (
        LEGACY,
        """
        async def train(hyperparameters):
            pass
        """,
    ),
    # As AWS's own legacy examples begin: library calls prepare the module, they do not run it.
    "legacy that configures logging and assigns from calls": (
        LEGACY,
        """
        import logging
        import mxnet as mx

        logging.basicConfig(level=logging.DEBUG)
        logger = logging.getLogger(__name__)
        CTX = [mx.cpu()]

        def train(channel_input_dirs, hyperparameters, num_gpus, hosts, **kwargs):
            return None
        """,
    ),
    "legacy with imports in try and if blocks": (
        LEGACY,
        """
        try:
            import ujson as json
        except ImportError:
            import json
        if json:
            SEPARATOR = ","

        def train(**kwargs):
            pass
        """,
    ),
    "a program that calls main() at the top level": (
        SCRIPT,
        """
        def train(args):
            pass

        def main():
            train(None)

        main()
        """,
    ),
    "a program that calls train() inside a with block": (
        SCRIPT,
        """
        import contextlib

        def train():
            pass

        with contextlib.suppress(Exception):
            train()
        """,
    ),
    "a program that trains in a top-level loop": (
        SCRIPT,
        """
        def train(epoch):
            pass

        for epoch in range(3):
            pass
        """,
    ),
    "a program that reads its arguments at the top level": (
        SCRIPT,
        """
        import argparse

        def train(args):
            pass

        parser = argparse.ArgumentParser()
        args, _ = parser.parse_known_args()
        """,
    ),
    "a program that reads sys.argv at the top level": (
        SCRIPT,
        """
        import sys

        def train(epochs):
            pass

        EPOCHS = int(sys.argv[1])
        """,
    ),
    "a program that calls one of its own functions": (
        SCRIPT,
        """
        def load():
            return []

        def train():
            pass

        DATA = load()
        """,
    ),
    "a program that calls train() under an if": (
        SCRIPT,
        """
        import os

        def train():
            pass

        if os.environ.get("SM_MODEL_DIR"):
            train()
        """,
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_detect_mode_for_real_shapes(code_dir, shape):
    mode, source = SHAPES[shape]
    path = write(code_dir, "entry.py", source)

    detected, reason = detect_mode(path)

    assert detected == mode, reason
    assert reason


def test_detect_mode_gives_the_reason_it_chose(code_dir):
    assert detect_mode(write(code_dir, "a.py", SHAPES["legacy with **kwargs"][1]))[1] == (
        "it defines train() and has no if __name__ == '__main__' block"
    )
    reversed_guard = write(code_dir, "b.py", SHAPES["reversed main block"][1])
    assert detect_mode(reversed_guard)[1] == "it has an if __name__ == '__main__' block"
    assert detect_mode(write(code_dir, "c.py", "def train(:"))[1] == "it does not parse as Python"
    assert detect_mode(write(code_dir, "d.py", SHAPES["a program that calls main() at the top level"][1]))[1] == (
        "it defines train() but it calls main() at the top level, so importing it would run it"
    )


@pytest.mark.parametrize(
    "source",
    [
        "def train():\n    pass\nx = " + "+".join(["1"] * 100000) + "\n",  # RecursionError in the parser
        "def train():\n    pass\nx = " + "not " * 200000 + "1\n",  # MemoryError in the parser
    ],
    ids=["recursion", "memory"],
)
def test_an_entry_point_too_deeply_nested_to_parse_is_left_for_python_to_report(code_dir, source):
    # Python's own compiler gives up on these too, and says so when the program runs.
    assert detect_mode(write(code_dir, "deep.py", source)) == (SCRIPT, "it is nested too deeply for Python's parser")


def test_a_file_with_a_null_byte_is_left_for_python_to_report(code_dir):
    path = code_dir / "bad.py"
    path.write_bytes(b"def train():\n    pass\x00\n")

    assert detect_mode(str(path))[0] == SCRIPT


def test_a_shell_script_is_a_script(code_dir):
    path = write(code_dir, "run.sh", "def train(hyperparameters):\n")

    assert detect_mode(path) == (SCRIPT, "it is not a Python module")


def test_the_legacy_mnist_example_is_legacy():
    assert detect_mode(str(EXAMPLES / "legacy" / "mnist.py"))[0] == LEGACY


def test_the_script_mnist_example_is_a_script():
    assert detect_mode(str(EXAMPLES / "script" / "mnist.py"))[0] == SCRIPT


def test_choose_detects_the_mode(code_dir):
    path = write(code_dir, "train.py", SHAPES["legacy with **kwargs"][1])

    chosen = program.choose(str(code_dir), "train.py", None)

    assert chosen == Program(path, "train.py", LEGACY, "it defines train() and has no if __name__ == '__main__' block")
    assert chosen.module_name == "train"


@pytest.mark.parametrize(("shape", "override"), [("legacy with **kwargs", SCRIPT), ("reversed main block", LEGACY)])
def test_sagemaker_mode_overrides_detection(code_dir, shape, override):
    write(code_dir, "train.py", SHAPES[shape][1])

    chosen = program.choose(str(code_dir), "train.py", override)

    assert chosen.mode == override
    assert chosen.reason == "sagemaker_mode says so"


def test_choose_still_locates_when_the_mode_is_overridden(code_dir):
    with pytest.raises(CodeError):
        program.choose(str(code_dir), "missing.py", SCRIPT)


@pytest.mark.parametrize("name", ["run.sh", "train"])
def test_legacy_mode_forced_on_a_file_that_is_not_a_python_module_fails_naming_it(code_dir, name):
    write(code_dir, name, "echo hi\n")

    with pytest.raises(CodeError) as caught:
        program.choose(str(code_dir), name, LEGACY)

    assert f"the entry point {name!r} is not a Python module (.py)" in str(caught.value)
    assert "remove sagemaker_mode" in str(caught.value)


# --- commands ---------------------------------------------------------------------------------

ARGUMENTS = ["--name", "two words", "--quote", 'it\'s "quoted"', "--cmd", "$(touch pwned)", "--glob", "*", "; echo x"]


def script(path: str) -> Program:
    return Program(path, os.path.basename(path), SCRIPT, "test")


TRAMPOLINE = ["/bin/sh", "-c", 'exec "$0" "$@"']


def test_a_python_script_runs_with_this_interpreter_by_the_name_it_was_given(code_dir):
    path = write(code_dir, "train.py")

    assert script_command(script(path), str(code_dir), ["--lr", "0.1"]) == [
        sys.executable,
        "--",
        "train.py",
        "--lr",
        "0.1",
    ]


def test_a_shell_script_is_made_executable_and_run_as_a_command(code_dir):
    path = write(code_dir, "run.sh")
    os.chmod(path, 0o644)

    assert script_command(script(path), str(code_dir), ARGUMENTS) == [*TRAMPOLINE, "./run.sh", *ARGUMENTS]
    # Executable as sagemaker-training makes it, but not writable by others (it sets 0777).
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755


def run_in(code_dir, command):
    return subprocess.run(command, cwd=code_dir, capture_output=True, text=True, timeout=30, check=True).stdout


def test_shell_script_arguments_are_not_reparsed_by_a_shell(code_dir):
    path = write(code_dir, "run.sh", 'for argument in "$@"; do printf "%s\\n" "$argument"; done\n')

    assert run_in(code_dir, script_command(script(path), str(code_dir), ARGUMENTS)).splitlines() == ARGUMENTS
    assert not (code_dir / "pwned").exists()


def test_a_shell_scripts_interpreter_line_chooses_its_interpreter(code_dir):
    path = write(code_dir, "run.sh", '#!/bin/bash\necho "${BASH_VERSINFO[0]} $0 $1"\n')

    output = run_in(code_dir, script_command(script(path), str(code_dir), ["a b"]))

    assert output.split(" ", 1)[1] == "./run.sh a b\n"
    assert output.split(" ", 1)[0].isdigit()


def test_a_shell_script_without_an_interpreter_line_runs_under_bin_sh(code_dir):
    path = write(code_dir, "run.sh", 'echo "$0 ${BASH_VERSION:-not bash}"\n')

    assert run_in(code_dir, script_command(script(path), str(code_dir), [])) == "./run.sh not bash\n"


def test_a_script_that_cannot_be_made_executable_runs_under_bin_sh(code_dir, monkeypatch):
    # A read-only code directory, which root cannot produce by chmod alone: os.chmod is replaced.
    path = write(code_dir, "run.sh", 'echo "$0 $1"\n')
    os.chmod(path, 0o644)

    def read_only(*_):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "chmod", read_only)

    command = script_command(script(path), str(code_dir), ["x"])

    assert command == ["/bin/sh", "./run.sh", "x"]
    assert run_in(code_dir, command) == "./run.sh x\n"


def test_a_python_script_receives_its_arguments_verbatim(code_dir):
    path = write(code_dir, "train.py", "import json, sys\nprint(json.dumps(sys.argv))\n")

    output = run_in(code_dir, script_command(script(path), str(code_dir), ARGUMENTS))

    assert json.loads(output) == ["train.py", *ARGUMENTS]


def test_an_entry_point_named_like_an_option_is_still_the_program(code_dir):
    path = write(code_dir, "-c.py", "import sys\nprint(sys.argv[0])\n")

    assert run_in(code_dir, script_command(script(path), str(code_dir), [])) == "-c.py\n"


def test_a_package_with_setup_py_runs_its_entry_point_as_a_module(code_dir):
    write(code_dir, "setup.py", "from setuptools import setup\nsetup(name='pkg')\n")
    path = write(code_dir, "train.py")
    nested = write(code_dir, "trainer/task.py")

    assert script_command(script(path), str(code_dir), ["--lr", "1"]) == [sys.executable, "-m", "train", "--lr", "1"]
    nested_program = Program(nested, "trainer/task.py", SCRIPT, "")
    assert script_command(nested_program, str(code_dir), []) == [sys.executable, "-m", "trainer.task"]


def test_setup_py_does_not_change_how_a_shell_script_runs(code_dir):
    write(code_dir, "setup.py")
    path = write(code_dir, "run.sh")

    assert script_command(script(path), str(code_dir), []) == [*TRAMPOLINE, "./run.sh"]


@pytest.mark.parametrize("mode", [0o755, 0o644])
def test_a_file_without_extension_is_a_command(code_dir, mode):
    path = write(code_dir, "train", '#!/bin/sh\necho ran "$1"\n')
    os.chmod(path, mode)

    command = script_command(script(path), str(code_dir), ["a b"])

    assert command == [*TRAMPOLINE, "./train", "a b"]
    assert run_in(code_dir, command) == "ran a b\n"


def test_a_command_in_a_subdirectory_runs_by_its_relative_name(code_dir):
    path = write(code_dir, "bin/train.sh", 'echo "$0"\n')

    command = script_command(Program(path, "bin/train.sh", SCRIPT, ""), str(code_dir), [])

    assert run_in(code_dir, command) == "./bin/train.sh\n"


def test_legacy_mode_runs_the_legacy_runner_on_the_entry_point(code_dir):
    path = write(code_dir, "train.py")

    assert program.legacy_command(Program(path, "train.py", LEGACY, "")) == [
        sys.executable,
        "-m",
        "sagemaker_mxnet_container.legacy",
        path,
    ]

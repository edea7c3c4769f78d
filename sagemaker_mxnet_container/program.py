"""The user's entry point: where it is, which mode runs it, and the command that does.

Legacy mode (the MXNet <= 1.2 images) imports the program and calls its ``train()``; script mode
runs it as a program. The choice is read from the source without running it: a module with a
top-level ``train`` function and no ``if __name__ == "__main__":`` block is a legacy module,
everything else is a program. ``sagemaker_mode`` overrides the choice.
"""

import ast
import logging
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

from sagemaker_mxnet_container.errors import CodeError

logger = logging.getLogger(__name__)

LEGACY = "legacy"
SCRIPT = "script"


@dataclass(frozen=True)
class Program:
    path: str
    mode: str
    reason: str

    @property
    def module_name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]


def locate(code_dir: str, name: Optional[str]) -> str:
    """The entry point's path inside the code directory; CodeError if it is not a file there."""
    if not name:
        raise CodeError(
            "hyperparameter sagemaker_program is not set: set it to the entry point's file name "
            "(the SDK's entry_point), for example mnist.py"
        )
    if os.path.isabs(name):
        raise CodeError(
            f"sagemaker_program {name!r} is an absolute path: name the entry point relative to the "
            f"code directory {code_dir}"
        )
    root = os.path.realpath(code_dir)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise CodeError(f"sagemaker_program {name!r} points outside the code directory {code_dir}")
    if os.path.isdir(path):
        raise CodeError(f"sagemaker_program {name!r} is a directory in {code_dir}, not a file to run")
    if not os.path.isfile(path):
        try:
            listing = sorted(entry for entry in os.listdir(root) if not entry.startswith("."))
        except OSError:
            listing = []
        shown = ", ".join(listing[:20]) + (", ..." if len(listing) > 20 else "")
        raise CodeError(
            f"entry point {name!r} not found in the code directory {code_dir} (it holds: {shown or 'nothing'}); "
            "check sagemaker_program and sagemaker_submit_directory"
        )
    # Not the resolved path: a symlinked entry point keeps its own name, which is its module name.
    return os.path.abspath(os.path.join(code_dir, name))


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    # "if __name__ != '__main__':" guards against being run, the opposite of a main block.
    if not all(isinstance(op, ast.Eq) for op in node.test.ops):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names) and any(
        isinstance(n, ast.Constant) and n.value == "__main__" for n in names
    )


def _calls_train(node: ast.stmt) -> bool:
    """A top-level statement such as ``train(args)`` or ``model = train(...)``."""
    if not isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign)) or node.value is None:
        return False
    call = node.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "train"


def detect_mode(path: str) -> Tuple[str, str]:
    """(mode, why) for a Python entry point, from its syntax tree."""
    if not path.endswith(".py"):
        return SCRIPT, "it is not a Python module"
    try:
        with open(path, "rb") as stream:
            tree = ast.parse(stream.read(), filename=path)
    except (SyntaxError, ValueError):
        # Python itself will report the error, with its line, when the program runs.
        return SCRIPT, "it does not parse as Python"
    body = tree.body
    if any(_is_main_guard(node) for node in body):
        return SCRIPT, "it has an if __name__ == '__main__' block"
    if any(_calls_train(node) for node in body):
        # Importing it would already train, with arguments of its own choosing.
        return SCRIPT, "it calls train() itself at the top level"
    if any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "train" for node in body):
        return LEGACY, "it defines train() and has no if __name__ == '__main__' block"
    return SCRIPT, "it defines no train() function"


def choose(code_dir: str, name: Optional[str], mode_override: Optional[str]) -> Program:
    path = locate(code_dir, name)
    if mode_override is not None:
        return Program(path, mode_override, "sagemaker_mode says so")
    mode, reason = detect_mode(path)
    return Program(path, mode, reason)


def script_command(program: Program, code_dir: str, arguments: List[str]) -> List[str]:
    """The argv of a script-mode run: never through a shell that would re-parse the arguments."""
    if os.path.isfile(os.path.join(code_dir, "setup.py")) and program.path.endswith(".py"):
        # An installed package runs as a module so its relative imports work.
        return [sys.executable, "-m", program.module_name, *arguments]
    if program.path.endswith(".py"):
        return [sys.executable, program.path, *arguments]
    if program.path.endswith(".sh"):
        return ["/bin/sh", program.path, *arguments]
    if os.access(program.path, os.X_OK):
        return [program.path, *arguments]
    return [sys.executable, program.path, *arguments]


def as_ps_worker(command: List[str]) -> List[str]:
    """A Python program's command, run through ``ps_worker`` so that a failure cannot hang at exit."""
    if command[0] != sys.executable:
        return command
    return [sys.executable, "-m", "sagemaker_mxnet_container.cluster.ps_worker", *command[1:]]


def legacy_command(program: Program) -> List[str]:
    return [sys.executable, "-m", "sagemaker_mxnet_container.legacy", program.path]

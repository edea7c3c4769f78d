"""The user's entry point: where it is, which mode runs it, and the command that does.

Legacy mode (the MXNet <= 1.2 images) imports the program and calls its ``train()``; script mode
runs it as a program, as sagemaker-training does. The choice is read from the source without
running it: a module with a top-level ``train`` function, no ``if __name__ == "__main__":`` block
and nothing at its top level that runs the module as a program (see ``detect_mode``) is a legacy
module, everything else is a program. ``sagemaker_mode`` overrides the choice.
"""

import ast
import errno
import logging
import os
import stat
import sys
from dataclasses import dataclass
from typing import Iterable, List, Optional, Set, Tuple

from sagemaker_mxnet_container.errors import CodeError, StartError

logger = logging.getLogger(__name__)

LEGACY = "legacy"
SCRIPT = "script"


@dataclass(frozen=True)
class Program:
    path: str
    """Absolute, in the code directory."""
    name: str
    """As ``sagemaker_program`` names it, relative to the code directory."""
    mode: str
    reason: str

    @property
    def module_name(self) -> str:
        """``sub/train.py`` runs as ``python -m sub.train`` where the code is a package."""
        stem = self.name[:-3] if self.name.endswith(".py") else self.name
        return stem.replace("/", ".")


def locate(code_dir: str, name: Optional[str]) -> str:
    """The entry point's path inside the code directory; CodeError if it is not a file there."""
    if not name:
        raise CodeError(
            "hyperparameter sagemaker_program is not set (nor the SAGEMAKER_PROGRAM environment variable): set it "
            "to the entry point's file name (the SDK's entry_point), for example mnist.py"
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


# Whatever a script calls these, calling them at the top level runs the module as a program.
_PROGRAM_CALLS = frozenset({"main", "train"})
_COMMAND_LINE_CALLS = frozenset({"parse_args", "parse_known_args", "parse_intermixed_args"})


def _top_level_work(statements: Iterable[ast.stmt], defined: Set[str]) -> Optional[str]:
    """What, at the top level, makes importing the module run it as a program; None if nothing.

    Imports, definitions, assignments and calls into libraries (``logging.basicConfig()``, as
    AWS's own legacy examples have) only prepare a module. Calling the module's own functions
    (``main()``, ``train(args)``), reading the command line, loops and ``with`` blocks run it.
    """
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            return "it loops"
        if isinstance(statement, (ast.With, ast.AsyncWith)):
            return "it has a with block"
        # ast.walk is iterative: a deeply nested expression cannot exhaust the stack here.
        for node in ast.walk(statement):
            if isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name):
                if node.value.id == "sys":
                    return "it reads sys.argv"
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name) and (function.id in defined or function.id in _PROGRAM_CALLS):
                return f"it calls {function.id}()"
            if isinstance(function, ast.Attribute) and function.attr in _COMMAND_LINE_CALLS:
                return f"it reads its command line ({function.attr}())"
    return None


def detect_mode(path: str) -> Tuple[str, str]:
    """(mode, why) for a Python entry point, from its syntax tree."""
    if not path.endswith(".py"):
        return SCRIPT, "it is not a Python module"
    try:
        with open(path, "rb") as stream:
            source = stream.read()
    except OSError as error:
        raise CodeError(f"the entry point {path} cannot be read: {error.strerror or error}") from None
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        # Python itself will report the error, with its line, when the program runs.
        return SCRIPT, "it does not parse as Python"
    except (RecursionError, MemoryError):
        # Python's own compiler gives up on it too, and will say so when the program runs.
        return SCRIPT, "it is nested too deeply for Python's parser"
    body = tree.body
    if any(_is_main_guard(node) for node in body):
        return SCRIPT, "it has an if __name__ == '__main__' block"
    definitions = [node for node in body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "train" for node in body):
        return SCRIPT, "it defines no train() function"
    work = _top_level_work(_flattened(body), {node.name for node in definitions})
    if work is not None:
        # Importing it would already train, with arguments of its own choosing.
        return SCRIPT, f"it defines train() but {work} at the top level, so importing it would run it"
    return LEGACY, "it defines train() and has no if __name__ == '__main__' block"


def _flattened(statements: List[ast.stmt]) -> List[ast.stmt]:
    """The statements that run at import: the top level, with the blocks of if and try opened up
    (their tests and handlers included), but not function or class bodies."""
    result = []
    pending = list(reversed(statements))
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.If):
            result.append(ast.Expr(statement.test))
            pending.extend(reversed([*statement.body, *statement.orelse]))
        elif isinstance(statement, (ast.Try, ast.TryStar)):
            blocks = [*statement.body, *statement.orelse, *statement.finalbody]
            blocks += [inner for handler in statement.handlers for inner in handler.body]
            pending.extend(reversed(blocks))
        else:
            result.append(statement)
    return result


def choose(code_dir: str, name: Optional[str], mode_override: Optional[str]) -> Program:
    path = locate(code_dir, name)
    if mode_override == LEGACY and not path.endswith(".py"):
        raise CodeError(
            f"sagemaker_mode is legacy, but the entry point {name!r} is not a Python module (.py): legacy mode "
            "imports it and calls its train(). Name a .py module, or remove sagemaker_mode to run it as a program"
        )
    if mode_override is not None:
        return Program(path, name, mode_override, "sagemaker_mode says so")
    mode, reason = detect_mode(path)
    return Program(path, name, mode, reason)


def _make_executable(path: str) -> bool:
    """As sagemaker-training does before running a command entry point, but without making it
    writable by others (it sets 0777); False where the file stays not executable."""
    if os.access(path, os.X_OK):
        return True
    try:
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | 0o111)
    except OSError as error:
        logger.warning("Cannot make %s executable (%s): running it with /bin/sh", path, error.strerror or error)
        return False
    return True


def _check_interpreter(path: str) -> None:
    """Through /bin/sh, a missing #! interpreter is only "not found" and exit code 127: say which."""
    try:
        with open(path, "rb") as stream:
            line = stream.readline(4096)
    except OSError:
        return
    words = line[2:].split() if line.startswith(b"#!") else []
    if words and os.path.isabs(words[0]) and not os.access(words[0], os.X_OK):
        interpreter = os.fsdecode(words[0])
        raise StartError(
            f"cannot start {path}: its #! line names {interpreter}, which is not an executable in the image "
            f"({os.strerror(errno.ENOENT) if not os.path.exists(words[0]) else 'not executable'}); install it, "
            "or change the #! line"
        )


def script_command(program: Program, code_dir: str, arguments: List[str]) -> List[str]:
    """The argv of a script-mode run, as sagemaker-training builds it, never through a shell that
    would re-parse the arguments (the code directory is the working directory):

    - ``.sh``, or a file without ``.py`` and no ``setup.py``: a command, made executable and run as
      ``./NAME`` by ``/bin/sh``, as sagemaker-training runs it, but with the arguments as the
      shell's positional parameters, never parsed by it: its ``#!`` line picks the interpreter,
      without one ``/bin/sh`` runs it, and it sees the environment ``/bin/sh`` passes on;
    - with ``setup.py`` in the code directory: ``python -m MODULE`` (the code is an installed
      package, and relative imports work);
    - otherwise ``python NAME``.
    """
    name = program.name
    package = os.path.isfile(os.path.join(code_dir, "setup.py"))
    if name.endswith(".sh") or not (package or name.endswith(".py")):
        local = "./" + name
        _check_interpreter(program.path)
        if _make_executable(program.path):
            return ["/bin/sh", "-c", 'exec "$0" "$@"', local, *arguments]
        return ["/bin/sh", local, *arguments]
    if package:
        return [sys.executable, "-m", program.module_name, *arguments]
    # "--": an entry point whose name starts with "-" is still the program, not an option.
    return [sys.executable, "--", name, *arguments]


def as_ps_worker(command: List[str]) -> List[str]:
    """A Python program's command, run through ``ps_worker`` so that a failure cannot hang at exit."""
    if command[0] != sys.executable:
        return command
    rest = command[2:] if command[1] == "--" else command[1:]
    return [sys.executable, "-m", "sagemaker_mxnet_container.cluster.ps_worker", *rest]


def legacy_command(program: Program) -> List[str]:
    return [sys.executable, "-m", "sagemaker_mxnet_container.legacy", program.path]

"""Runs a script-mode Python program as a ps-lite worker that cannot hang on its way out.

When MXNet's distributed kvstore is destroyed at exit, the worker waits in ps-lite's exit
barrier for every other worker. After a failure the others are still training, so a worker that
raised, or called ``sys.exit(1)``, would wait there forever instead of exiting. This wrapper
runs the program as ``__main__``, exactly as ``python`` would, and on a failure prints the
traceback and leaves at once, skipping the barrier; a successful program exits normally.

Usage: ``python -m sagemaker_mxnet_container.cluster.ps_worker PATH ARGS...`` or ``... -m MODULE ARGS...``.
"""

import os
import runpy
import sys
import traceback


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code & 0xFF
    try:
        print(error.code, file=sys.stderr)
    except BaseException:
        # sys.exit(obj) whose __str__ raises (SystemExit(0) included) still failed.
        print("<the program's exit message could not be rendered>", file=sys.stderr)
    return 1


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["-m"]:
        module, *rest = arguments[1:]
        sys.argv = [module, *rest]
        sys.path[0] = os.getcwd()
        run = lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        path, *rest = arguments
        sys.argv = [path, *rest]
        sys.path[0] = os.path.dirname(os.path.abspath(path))
        run = lambda: runpy.run_path(path, run_name="__main__")  # noqa: E731
    try:
        run()
    except SystemExit as error:
        code = _exit_code(error)
        if code:
            _leave(code)
        raise
    except BaseException:
        traceback.print_exc()
        _leave(1)


if __name__ == "__main__":
    main()

"""The metrics of one run of the user's code: collected while it runs, recorded when it ends.

``output/data/metrics.csv`` and ``output/data/training-curves.png`` are written whether the code
succeeded or failed (a diverging loss is most worth seeing in a failed job), and a summary goes
to the log. A file of that name that the user's code wrote during the run is the user's: it is
left alone. Nothing is written through a link, nor outside the job's output directory. Drawing
happens in a child (``metrics.plot``); when the job is being stopped or aborted the curves are not
drawn, since the platform's SIGKILL may be seconds away, but the CSV still is.
"""

import logging
import os
import sys
import tempfile
from typing import Dict, Optional, Tuple

from sagemaker_mxnet_container.metrics.collector import Collector
from sagemaker_mxnet_container.metrics.report import CSV_NAME, PNG_NAME, summary, write_csv

logger = logging.getLogger(__name__)

PLOT_MODULE = "sagemaker_mxnet_container.metrics.plot"


def _identity(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        stat = os.lstat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


class Recording:
    def __init__(self, output_data_dir: str, output_dir: str):
        self.collector = Collector()
        self._directory = output_data_dir
        self._output_dir = output_dir
        # What was there before the user's code ran (an earlier run's files may be replaced;
        # anything the code writes in the meantime is its own).
        self._before: Dict[str, Optional[Tuple[int, int, int]]] = {
            name: _identity(os.path.join(output_data_dir, name)) for name in (CSV_NAME, PNG_NAME)
        }

    def finish(self, supervisor) -> None:
        """Writes what was collected; never fails the job (a problem is logged as a warning)."""
        rows = self.collector.rows()
        if not rows:
            return
        logger.info("Metrics found in the output (last and best value of each):")
        for line in summary(rows, self.collector.dropped):
            logger.info("  %s", line)
        if not self._inside_output():
            logger.warning(
                "%s no longer leads to a directory inside %s; metrics.csv and the curves were not written",
                self._directory,
                self._output_dir,
            )
            return
        csv_path = self._writable(CSV_NAME)
        if csv_path is None:
            return
        try:
            self._replace(csv_path, lambda path: write_csv(rows, path))
        except OSError as error:
            logger.warning("Could not write %s: %s", csv_path, error.strerror or error)
            return
        logger.info("Metrics written to %s", csv_path)
        png_path = self._writable(PNG_NAME)
        if png_path is None:
            return
        if supervisor.stop_signal is not None or supervisor.abort_reason is not None:
            logger.info("The training curves are not drawn: the job is ending")
            return
        self._draw(supervisor, csv_path, png_path)

    def _inside_output(self) -> bool:
        directory = os.path.realpath(self._directory)
        output = os.path.realpath(self._output_dir)
        return os.path.isdir(directory) and os.path.commonpath([directory, output]) == output

    def _writable(self, name: str) -> Optional[str]:
        path = os.path.join(self._directory, name)
        now = _identity(path)
        if now is not None and now != self._before[name]:
            logger.warning("%s was written by the training code; the toolkit's own was not written over it", path)
            return None
        return path

    def _replace(self, path: str, write) -> None:
        """Writes a new file beside ``path``, then renames it over: a link at ``path`` is replaced,
        never written through."""
        name = os.path.basename(path)
        stem, extension = os.path.splitext(name)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{stem}.", suffix=extension, dir=self._directory)
        os.close(descriptor)
        try:
            write(temporary)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            _remove(temporary)
            raise

    def _draw(self, supervisor, csv_path: str, png_path: str) -> None:
        def plot(temporary: str) -> None:
            result = supervisor.run(
                [sys.executable, "-m", PLOT_MODULE, csv_path, temporary],
                env={**os.environ, "MPLBACKEND": "Agg"},
                confined=False,
            )
            if result.exit_code != 0:
                last = next((line for line in reversed(result.stderr_tail) if line.strip()), "no output")
                raise _PlotFailed(f"the plot exited with {result.exit_code}: {last}")

        try:
            self._replace(png_path, plot)
        except (_PlotFailed, OSError) as error:
            logger.warning("The training curves were not drawn: %s", error)
            return
        logger.info("Training curves drawn in %s", png_path)


class _PlotFailed(Exception):
    pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

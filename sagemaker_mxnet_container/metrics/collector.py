"""The supervisor's side: metric values picked out of the user's output as it is copied.

The copying threads hand every chunk they read to a ``Stream``; a chunk in which no metric line
can start (no ``Epoch[``, ``Iter[`` or ``[metrics]``) costs one search and is not split into lines
or decoded, so output without metrics is copied at full speed. Memory is bounded: a partial line
is kept up to ``MAX_LINE_BYTES``, and past ``MAX_ROWS`` values per-batch values are dropped, then
all (the summary says how many).
"""

import threading
import time
from dataclasses import dataclass
from typing import Callable, List

from sagemaker_mxnet_container.metrics.lines import CANDIDATE, Sample, parse

MAX_LINE_BYTES = 64 * 1024
MAX_ROWS = 100_000


@dataclass(frozen=True)
class Row:
    """A sample and when it was seen, in seconds since the user's code started."""

    seconds: float
    sample: Sample


class Collector:
    """Every metric value seen on any of the streams fed to it, in the order seen."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_rows: int = MAX_ROWS):
        self._clock = clock
        self._start = clock()
        self._max_rows = max_rows
        self._rows: List[Row] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def stream(self) -> "Stream":
        """A feed for one output stream (each keeps its own partial line)."""
        return Stream(self)

    def add_line(self, line: str) -> None:
        samples = parse(line)
        if not samples:
            return
        seconds = round(self._clock() - self._start, 3)
        with self._lock:
            for sample in samples:
                if len(self._rows) >= self._max_rows * 2 or (
                    len(self._rows) >= self._max_rows and sample.batch is not None
                ):
                    self.dropped += 1
                else:
                    self._rows.append(Row(seconds, sample))

    def rows(self) -> List[Row]:
        with self._lock:
            return list(self._rows)


class Stream:
    def __init__(self, collector: Collector):
        self._collector = collector
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data[-MAX_LINE_BYTES:]
            return
        self._partial = data[end + 1 :][-MAX_LINE_BYTES:]
        if CANDIDATE.search(data, 0, end) is None:
            return
        for line in data[:end].split(b"\n"):
            if CANDIDATE.search(line):
                self._add(line)

    def close(self) -> None:
        """The stream ended: its last line may have had no newline."""
        if self._partial and CANDIDATE.search(self._partial):
            self._add(self._partial)
        self._partial = b""

    def _add(self, line: bytes) -> None:
        # A progress bar rewrites its line with carriage returns; each rewrite is a line of its own.
        for part in line.split(b"\r"):
            if part:
                self._collector.add_line(part.decode("utf-8", "replace"))


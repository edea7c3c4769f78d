"""Training metrics: recognised in the user's output as it passes through the supervisor, then
recorded with the job's output.

- ``lines``: what a metric line looks like (MXNet's own Module.fit and callback lines, and lines a
  script marks with ``[metrics]``), as pure parsing with no I/O;
- ``collector``: the supervisor's side, fed raw output chunks, bounded in memory and cheap on output
  that holds no metric;
- ``report``: ``metrics.csv`` and the summary logged at the end;
- ``plot``: ``training-curves.png``, drawn by matplotlib in a child process so the supervisor never
  imports it.
"""

from sagemaker_mxnet_container.metrics.recording import Recording

__all__ = ["Recording"]

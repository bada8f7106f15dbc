"""A run in progress: read its training log, predict where it ends, check its health.

Modules: ``log`` (:class:`RunLog`, the one validated shape every reader returns, and the
one table of column/key names), ``readers`` (one module per log format, and format
detection), ``plan`` (the run's LR at every step: the planned schedule, checked against
the logged LR), ``forecast`` (the schedule law fitted on the curve so far, and the loss
under the current plan and under alternatives, with intervals), ``health`` (spikes,
divergence, gradient-norm growth, against the law's band); the figure is
``advisor.cli.plots.inflight_run``. Everything here is torch-free and pure except the
readers (files).
"""

"""Calibration: train small muP proxy models on real text and record sweeps.

Modules (torch is imported only by the ones that train):

- ``model``: the proxy transformer family (muP or standard parameterisation), optimiser.
- ``data``: the embedded corpus (Python standard library source bytes) and user data.
- ``train``: one run (``train_run``) with its loss curve; ``runtime``: what it shares with
  ``stacked`` (many runs as one model); ``group``: a group of runs, stacked or one at a time.
- ``sweep``: executors (in-process, one process per GPU, Ray) and the progress bar.
- ``coordcheck``: the muP coordinate check.

The torch-free parts live in advisor/: run specs (``advisor.specs.runspec``), the proxy
configuration (``advisor.specs.proxyspec``), plans (``advisor.specs.plan``), the results store
(``advisor.runs.store``) and its summaries (``advisor.runs.summary``). This package imports advisor/,
never the reverse (tests/test_layers.py).
"""

"""Calibration: train small muP proxy models on real text and record sweeps.

Modules (torch is imported only by the ones that train):

- ``model``: the proxy transformer family (muP or standard parameterisation), optimiser.
- ``data``: the embedded corpus (Python standard library source bytes) and user data.
- ``train``: one run (``train_run``) or a group of runs (``train_group``) with its loss curve.
- ``plan``: sweep plans (YAML in recipes/plans/) expanded to run specs.
- ``store``: the SQLite results store (torch-free; what the fitting code reads).
- ``sweep``: executors (in-process, one process per GPU, Ray) and the progress bar.
- ``coordcheck``: the muP coordinate check.
"""

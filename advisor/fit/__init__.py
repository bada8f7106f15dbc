"""Fitting laws from sweeps: per-cell optima, LR/batch/weight-decay laws, the loss law.

Torch-free: numpy and scipy only. Modules: optima (per-cell smooth optimum with bootstrap),
surface (joint loss surface over log LR and log batch), powerlaw (log-linear laws, critical
batch), weight_decay (AdamW timescale), loss_law (Chinchilla/Epoch Huber fit), gaps (how good a
law is on a grid), lr_batch (the LR/batch laws by three methods, and their cross-validation),
pipeline (every law a sweep supports, and the law-set file), evidence (the shipped
evidence-fit law set from published runs), optima_law and ridge (laws of tuned optima; the LR
at a fixed batch), transfer and validation (the N exponent under muP; held-out-width gaps),
design (a calibration plan for a budget), plan_precision (how precisely a planned sweep
will fit the LR law, under the fitter's noise model), stability, stability_check and stability_evidence
(LR sensitivity, largest stable LR, attention-logit growth, published loss cliffs).
"""

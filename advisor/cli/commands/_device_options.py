"""The options that describe the user's devices and batch (``recommend``); the values are
checked by ``advisor.recommendation.batch_plan.parse_device_options``."""
from __future__ import annotations

import click


def device_options(f):
    """Decorator adding --devices, --micro-batch and --batch-ramp (a fixed global batch,
    --batch-size / --batch-tokens, is one of the fixed choices; it is checked against the
    devices)."""
    for opt in reversed((
            click.option("--devices", default=None, metavar="N",
                         help="Data-parallel devices (processes) the run uses: the global "
                              "batch becomes devices x --micro-batch x a whole accumulation, "
                              "and every trainer file is written for that many; a fixed --batch-size / "
                              "--batch-tokens must be a whole number of its micro-steps."),
            click.option("--micro-batch", default=None, metavar="M",
                         help="Sequences one device runs per forward/backward (what fits in "
                              "its memory); default: the largest power of two up to 8 that "
                              "fits the batch."),
            click.option("--batch-ramp", default=None, metavar="K",
                         help="A batch warmup of K doublings up to the planned batch "
                              "(Merrill et al. 2025), switching where the critical batch "
                              "grows past each stage."))):
        f = opt(f)
    return f

"""The suite's stages in issue 18's priority order (change it only with a reason written
down in docs/gpu-suite.md)."""
from bench.gpu_suite.stages.calibration import CalibrationStage
from bench.gpu_suite.stages.lr_sweep import LRSweepStage
from bench.gpu_suite.stages.schedule import ScheduleStage
from bench.gpu_suite.stages.spectral import SpectralStage
from bench.gpu_suite.stages.stability import StabilityStage
from bench.gpu_suite.stages.tests import TestsStage
from bench.gpu_suite.stages.throughput import ThroughputStage
from bench.gpu_suite.stages.transfer import TransferStage
from bench.gpu_suite.stages.transfer_sweeps import TransferSweepsStage


def all_stages() -> list:
    stages = [TestsStage(), LRSweepStage(), ThroughputStage(), SpectralStage(),
              CalibrationStage(), TransferStage(), ScheduleStage(),
              TransferSweepsStage(), StabilityStage()]
    assert [s.order for s in stages] == list(range(1, len(stages) + 1))
    return stages

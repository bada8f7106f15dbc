"""The suite's stages, in the priority order of bench/gpu_suite/catalog.yaml (issue 18's
order; change it only with a reason written down in docs/gpu-suite.md)."""
from bench.gpu_suite.stages.base import catalog
from bench.gpu_suite.stages.calibration import CalibrationStage
from bench.gpu_suite.stages.lr_sweep import LRSweepStage
from bench.gpu_suite.stages.schedule import ScheduleStage
from bench.gpu_suite.stages.spectral import SpectralStage
from bench.gpu_suite.stages.stability import StabilityStage
from bench.gpu_suite.stages.tests import TestsStage
from bench.gpu_suite.stages.throughput import ThroughputStage
from bench.gpu_suite.stages.transfer import TransferStage
from bench.gpu_suite.stages.transfer_sweeps import TransferSweepsStage
from bench.gpu_suite.stages.user_model import UserModelStage

_CODE = {c.name: c for c in (TestsStage, LRSweepStage, ThroughputStage, SpectralStage,
                             CalibrationStage, TransferStage, ScheduleStage,
                             TransferSweepsStage, StabilityStage, UserModelStage)}


def all_stages() -> list:
    """One instance of each stage, in the catalog's order (every catalog row has its code)."""
    assert set(catalog()) == set(_CODE), "bench/gpu_suite/catalog.yaml and the stages differ"
    return [_CODE[name]() for name in catalog()]

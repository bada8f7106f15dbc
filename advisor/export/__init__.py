"""Write a :class:`~advisor.recommendation.core.Recommendation` in the formats trainers read.

A registry: format name -> :class:`~advisor.export.common.Exporter` (writer, file suffix, doc
line, what the trainer cannot express). One module per format; each holds its trainer's field
names and notes and reads the recommendation's typed blocks by attribute.

| format      | module                  | read back by (in tests)                     |
|-------------|-------------------------|---------------------------------------------|
| yaml, json  | advisor/export/yaml_json.py | yaml.safe_load, json.loads              |
| nanogpt     | advisor/export/nanogpt.py   | nanoGPT's configurator: exec of the file |
| hf          | advisor/export/hf.py        | transformers.HfArgumentParser            |
| torchtitan  | advisor/export/torchtitan.py| 0.3.x Python config: AST vs the 0.3.0 API |
| torchtitan-0.2 | advisor/export/torchtitan_toml.py | torchtitan 0.2.2's ConfigManager   |
| megatron    | advisor/export/megatron.py  | Megatron-LM's recorded options; megatron-core's LR scheduler |
| pytorch     | advisor/export/pytorch.py   | exec of the snippet, torch.optim.Muon    |

Trainer formats carry the numbers a trainer can take; the evidence stays in yaml/json. A new
trainer is one new module defining ``EXPORTER`` and one entry in ``_TRAINERS`` below.
"""
from __future__ import annotations

from advisor.errors import AdvisorError
from advisor.export import (hf, megatron, nanogpt, pytorch, torchtitan, torchtitan_toml,
                            yaml_json)
from advisor.export.common import Exporter, micro_batch, notes

_TRAINERS = (nanogpt.EXPORTER, hf.EXPORTER, torchtitan.EXPORTER, torchtitan_toml.EXPORTER,
             megatron.EXPORTER, pytorch.EXPORTER)
_EXPORTERS = yaml_json.exporters(_TRAINERS) + _TRAINERS
REGISTRY: dict[str, Exporter] = {e.name: e for e in _EXPORTERS}
NAMES = tuple(REGISTRY)                                     # every --format choice
FORMATS = tuple(n for n, e in REGISTRY.items() if not e.needs_muon)   # any recommendation

__all__ = ["REGISTRY", "NAMES", "FORMATS", "Exporter", "export", "exporter", "micro_batch",
           "notes"]


def exporter(fmt: str) -> Exporter:
    """The registry entry for ``fmt``, or AdvisorError naming the choices."""
    try:
        return REGISTRY[fmt]
    except (KeyError, TypeError):
        raise AdvisorError(f"unknown format {fmt!r}; choose from {', '.join(NAMES)}") from None


def export(rec, fmt: str) -> str:
    """The recommendation as text in format ``fmt`` (one of NAMES)."""
    return exporter(fmt).write(rec)

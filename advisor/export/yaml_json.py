"""The full recommendation with its evidence: YAML and JSON, the schema of docs/recommend.md
("Output schema"): the recommendation's ``to_dict()`` plus, in the depth view, what each
trainer format cannot express of it (``trainer_support``, from the trainers' exporters)."""
from __future__ import annotations

import json
from functools import partial

from advisor.export.common import Exporter

_DOCS = {"yaml": "the full recommendation: every value with unit and source",
         "json": "the same as JSON (stable schema, docs/recommend.md)"}


def full_dict(rec, trainers=()) -> dict:
    """``rec.to_dict()`` with ``depth.trainer_support``: the depth note of each exporter in
    ``trainers`` that has one."""
    d = rec.to_dict()
    if d.get("depth"):
        d["depth"]["trainer_support"] = {e.name: e.depth_note for e in trainers
                                         if e.depth_note is not None}
    return d


def write_yaml(rec, trainers=()) -> str:
    import yaml
    return yaml.safe_dump(full_dict(rec, trainers), sort_keys=False, width=100)


def write_json(rec, trainers=()) -> str:
    return json.dumps(full_dict(rec, trainers), indent=2) + "\n"


def exporters(trainers) -> tuple[Exporter, Exporter]:
    """The yaml and json exporters, stating ``trainers``' depth notes."""
    return tuple(Exporter(name=name, write=partial(fn, trainers=tuple(trainers)),
                          suffix=f".{name}", doc=_DOCS[name], full=True)
                 for name, fn in (("yaml", write_yaml), ("json", write_json)))

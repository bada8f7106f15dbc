"""The full recommendation with its evidence: YAML (``rec.to_yaml()``) and JSON
(``rec.to_json()``), the schema of docs/recommend.md ("Output schema")."""
from __future__ import annotations

from advisor.export.common import Exporter


def write_yaml(rec) -> str:
    return rec.to_yaml()


def write_json(rec) -> str:
    return rec.to_json() + "\n"


YAML = Exporter(name="yaml", write=write_yaml, suffix=".yaml",
                doc="the full recommendation: every value with unit and source", full=True)
JSON = Exporter(name="json", write=write_json, suffix=".json",
                doc="the same as JSON (stable schema, docs/recommend.md)", full=True)

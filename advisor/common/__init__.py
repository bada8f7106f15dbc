"""Ground floor: parsing human-written numbers, YAML in and out, output files, memory bounds.

Holds ``numbers`` (7e9, 7B, 8k), ``yamlio`` (the project's YAML reader/writer), ``outputs``
(check a path before the work, write atomically) and ``membudget`` (will it fit in memory).
May import: ``advisor.errors`` only.
"""

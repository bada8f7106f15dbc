"""What the transfer summaries share for ``advisor results DIR --by depth|optimizer|wd-rule``:
the note on a best point at a grid end (:func:`edge_note`). The summaries themselves are
listed in ``calibration.analyze.by``."""
from __future__ import annotations


def edge_note(label: str, where: str, edge) -> list[str]:
    """The line saying that the best point of ``label`` sits at an end of the grid at
    ``where`` values ``edge`` (none when ``edge`` is empty)."""
    if not edge:
        return []
    return [f"{label}: best at an end of the grid at {where} {', '.join(map(str, edge))}: "
            f"the optimum may lie outside it"]

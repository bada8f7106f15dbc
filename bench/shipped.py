"""What the scripts that regenerate shipped files share (bench.trust_evidence,
bench.conditional_eval): the ``--external``/``--write``/``--check`` options and one rule for
both: ``--write`` writes each rendered file atomically, ``--check`` compares each with the
committed file byte for byte and exits 1 naming any that differs (what the tests run)."""
from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "data" / "external"


def parser(description: str | None = None) -> argparse.ArgumentParser:
    """A parser with ``--external DIR`` (shared/data/external beside the repository),
    ``--write`` and ``--check``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--external", default=str(EXTERNAL))
    ap.add_argument("--write", action="store_true", help="write the shipped files")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the committed files are what --write would write")
    return ap


def write_or_check(files: dict, *, write: bool, check: bool) -> None:
    """``files`` ({path: text}) written atomically (``write``) and/or compared with what is
    committed (``check``: SystemExit(1) naming the files that differ)."""
    from advisor.common.outputs import atomic_write_text

    names = ", ".join(str(Path(p).relative_to(REPO)) for p in files)
    if write:
        for path, text in files.items():
            atomic_write_text(path, text)
        print(f"wrote {names}")
    if check:
        stale = [str(Path(p).relative_to(REPO)) for p, text in files.items()
                 if not Path(p).is_file() or Path(p).read_text(encoding="utf-8") != text]
        if stale:
            print("differ from what --write gives: " + ", ".join(stale))
            raise SystemExit(1)
        print(f"{names}: what --write gives")

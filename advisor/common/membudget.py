"""Will a computation fit in memory? Estimate before starting, refuse with the figure.

A command that allocates arrays whose length the user chooses (``schedule predict --steps``)
calls :func:`check_memory` with its estimate first: an estimate above half of the memory
the machine has available now is refused with one line (AdvisorError, exit 2) that says how
much would be needed, instead of being killed by the kernel's OOM killer halfway through.
"""
from __future__ import annotations

import os

from advisor.errors import AdvisorError

#: Share of the currently available memory one command may plan to use.
USABLE_FRACTION = 0.5


def available_bytes() -> int:
    """Memory available to a new allocation now, in bytes (MemAvailable on Linux; else the
    physical memory; else 4 GiB when neither can be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 4 << 30


def human_bytes(n: float) -> str:
    """``n`` bytes as a short string in binary units (KiB, MiB, GiB, TiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(what: str, need_bytes: float, hint: str = "") -> None:
    """Refuse (AdvisorError) when ``need_bytes`` exceeds the usable share of free memory.

    ``what`` names the computation, ``hint`` says how to make it smaller.
    """
    usable = USABLE_FRACTION * available_bytes()
    if need_bytes > usable:
        raise AdvisorError(f"{what} would need about {human_bytes(need_bytes)} of memory; "
                           f"this machine has {human_bytes(usable / USABLE_FRACTION)} available"
                           + (f"; {hint}" if hint else ""))

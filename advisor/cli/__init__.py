"""The ``advisor`` command line: thin click commands that parse, call the library, and format.

Holds ``app`` (the entry point ``main``, lazy subcommands, error handling and exit codes),
``deps`` (optional dependencies and their install commands), ``plots`` (every figure: the one
module that imports matplotlib) and ``commands/`` (one module per command). May import every stage of ``advisor``; the ``calibrate`` and ``check-spectral``
commands alone reach into ``calibration/``, inside their command functions.
"""
from advisor.cli.app import main

__all__ = ["main"]

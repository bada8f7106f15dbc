"""Optional dependencies: which command needs which module, and the exact install command.

``require("calibrate", "torch", "mup")`` is called by a command before it does any work:
a module that is missing (or fails to import) is one :class:`~advisor.errors.AdvisorError`
line saying what to install (exit 2), never a traceback or a sweep of failed runs.

mup is not in any extra: mup 1.0.0 declares torchvision, seaborn and pandas as
dependencies although it needs none of them, and a pip extra cannot say ``--no-deps``, so
it is installed on its own with :data:`MUP_INSTALL`.
"""
from __future__ import annotations

import importlib

from advisor.errors import AdvisorError

#: top-level module -> the extra of hp-advisor that provides it
EXTRAS = {"torch": "calibrate", "tqdm": "calibrate", "matplotlib": "plot", "ray": "ray",
          "tensorboard": "run"}
MUP_INSTALL = "pip install --no-deps mup==1.0.0"


def install_hint(module: str) -> str:
    """The exact command that installs ``module`` (a top-level module name)."""
    top = module.split(".")[0]
    if top == "mup":
        return MUP_INSTALL
    if top == "cupy":   # the `gpu` extra names no wheel: it must match the machine's CUDA
        return "pip install cupy-cuda12x (CUDA 12) or cupy-cuda13x (CUDA 13)"
    extra = EXTRAS.get(top)
    return f"pip install 'hp-advisor[{extra}]'" if extra else f"pip install {top}"


def missing_message(command: str, module: str) -> str:
    top = module.split(".")[0]
    return f"`advisor {command}` needs {top}, which is not installed: {install_hint(top)}"


def require(command: str, *modules: str, alternative: str = "") -> None:
    """Import each of ``modules``; AdvisorError naming the install command for the first
    one that cannot be imported, together with the install commands of the others that are
    missing too (so one command installs everything the subcommand needs). ``command`` is
    the subcommand, for the message; ``alternative`` a way to do without (", or pass
    --no-plot"), appended."""
    missing_all = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing_all.append((name, getattr(exc, "name", None) or name))
    if not missing_all:
        return
    name, missing = missing_all[0]
    hints = list(dict.fromkeys(install_hint(m) for _, m in missing_all))
    also = "".join(f" && {h}" for h in hints[1:])
    others = [n for n, _ in missing_all[1:]]
    tail = (f" (it needs {', '.join(others)} too: {' && '.join(hints)})" if others and also
            else "")
    if missing.split(".")[0] != name.split(".")[0]:  # installed; a dependency is not
        raise AdvisorError(f"`advisor {command}` needs {name}, which needs "
                           f"{missing.split('.')[0]}, which is not installed: "
                           f"{install_hint(missing)}{tail}{alternative}") from None
    raise AdvisorError(missing_message(command, name) + tail + alternative) from None


def require_plot(command: str, path, alternative: str = "") -> None:
    """Before any work: matplotlib is installed (:func:`require`) and ``path`` can take the
    plot (``advisor.common.outputs.check_output_file``)."""
    from advisor.common.outputs import check_output_file

    require(command, "matplotlib", alternative=alternative)
    check_output_file(path, "plot")

"""The ``advisor`` command line.

Subcommands live in ``advisor/commands/<name>.py`` and are imported only when invoked, so
that ``advisor recommend`` never pays for (or needs) torch, matplotlib or the fitting code.
Every :class:`~advisor.errors.AdvisorError` becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from advisor.errors import AdvisorError

# name -> "module:attribute" of a click command; imported lazily.
COMMANDS = {
    "recommend": "advisor.commands.recommend:recommend",
    "laws": "advisor.commands.laws:laws",
    "compare": "advisor.commands.compare:compare",
    "fit": "advisor.commands.fit:fit",
    "evaluate": "advisor.commands.evaluate:evaluate",
    "plot": "advisor.commands.plot:plot",
    "schedule": "advisor.commands.schedule:schedule",
    "calibrate": "advisor.commands.calibrate:calibrate",
    "results": "advisor.commands.results:results",
    "check-spectral": "advisor.commands.check_spectral:check_spectral",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(module_name):
                return None  # command not built yet
            return _missing_dependency_command(name, exc.name or "a dependency")
        return getattr(module, attr)


_EXTRAS = {"torch": "calibrate", "mup": "calibrate", "tqdm": "calibrate",
           "matplotlib": "plot", "ray": "ray", "cupy": "gpu"}


def _missing_dependency_command(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose optional dependency is not installed."""
    top = missing.split(".")[0]
    extra = _EXTRAS.get(top)
    how = (f"pip install 'hp-advisor[{extra}]'" if extra else f"pip install {top}")
    if top == "mup":
        how = "pip install --no-deps mup==1.0.0"
    if top == "cupy":
        how = "pip install cupy-cuda12x or cupy-cuda13x, matching your CUDA"
    message = f"`advisor {name}` needs {top}, which is not installed: {how}"

    def callback(**_):
        raise AdvisorError(message)

    return click.Command(name, callback=callback, help=message, short_help=f"(needs {top})",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True},
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hp-advisor")
def cli():
    """Hyperparameters for training language models, with the evidence behind every number."""


def main(argv=None):
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="advisor", standalone_mode=False)
    except AdvisorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line, unless asked for the traceback
        if os.environ.get("ADVISOR_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} "
                   "(set ADVISOR_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()

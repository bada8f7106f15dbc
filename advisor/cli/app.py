"""The ``advisor`` command line.

Subcommands live in ``advisor/cli/commands/<name>.py`` and are imported only when invoked, so
that ``advisor recommend`` never pays for (or needs) torch, matplotlib or the fitting code.
Every :class:`~advisor.errors.AdvisorError` becomes one line on stderr and exit code 2.

Exit codes: 0 success; 1 a check failed (check-spectral), a sweep with failed runs, or an
internal error; 2 bad input or environment (a usage error, a missing dependency, an
unwritable output); 3 inconclusive (check-spectral); 4 a loss spike or divergence found
(run); 130 interrupted.
"""
from __future__ import annotations

import errno
import importlib
import os
import sys

import click

from advisor.cli.deps import missing_message
from advisor.errors import AdvisorError

# name -> "module:attribute" of a click command; imported lazily.
COMMANDS = {
    "recommend": "advisor.cli.commands.recommend:recommend",
    "laws": "advisor.cli.commands.laws:laws",
    "compare": "advisor.cli.commands.compare:compare",
    "fit": "advisor.cli.commands.fit:fit",
    "evaluate": "advisor.cli.commands.evaluate:evaluate",
    "plot": "advisor.cli.commands.plot:plot",
    "schedule": "advisor.cli.commands.schedule:schedule",
    "plan": "advisor.cli.commands.plan:plan",
    "prepare-data": "advisor.cli.commands.prepare_data:prepare_data",
    "calibrate": "advisor.cli.commands.calibrate:calibrate",
    "results": "advisor.cli.commands.results:results",
    "run": "advisor.cli.commands.run:run",
    "validate": "advisor.cli.commands.validate:validate",
    "check-spectral": "advisor.cli.commands.check_spectral:check_spectral",
    "check-stability": "advisor.cli.commands.check_stability:check_stability",
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
            if exc.name and exc.name.startswith("advisor"):
                raise               # our own module is missing: a packaging bug, not the user's
            return _missing_dependency_command(name, exc.name or "a dependency")
        return getattr(module, attr)


def _missing_dependency_command(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose module imports a dependency that is not installed."""
    top = missing.split(".")[0]
    message = missing_message(name, top)

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


# OS errors that say something about the user's files or machine, not about our code.
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT,
                       errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG,
                       errno.EMFILE, errno.ENFILE, errno.ELOOP}


def exit_code(returned) -> int:
    """The process exit code for what ``cli.main(..., standalone_mode=False)`` returned.

    In that mode click *returns* the code of a ``click.exceptions.Exit`` (and ``ctx.exit``)
    instead of raising it, and otherwise returns the command's own return value: an int is
    an exit code, anything else (None) is success.
    """
    if isinstance(returned, bool) or not isinstance(returned, int):
        return 0
    return returned


def main(argv=None):
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        returned = cli.main(args=argv, prog_name="advisor", standalone_mode=False)
    except AdvisorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:          # a bad option or value: one line, exit 2
        where = exc.ctx.command_path if exc.ctx is not None else "advisor"
        click.echo(f"error: {exc.format_message()} (see: {where} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS or os.environ.get("ADVISOR_DEBUG"):
            raise_internal(exc)
        if exc.filename:
            click.echo(f"error: cannot access {exc.filename}: {exc.strerror}", err=True)
        else:        # no file named: the command's own output stream (a full disk, a pipe)
            click.echo(f"error: cannot write to standard output: {exc.strerror}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug: one line, unless asked for the traceback
        raise_internal(exc)
    sys.exit(exit_code(returned))


def raise_internal(exc: BaseException):
    """A bug: one line and exit 1, or the traceback when ADVISOR_DEBUG is set."""
    if os.environ.get("ADVISOR_DEBUG"):
        raise exc
    click.echo(f"internal error: {type(exc).__name__}: {exc} "
               "(set ADVISOR_DEBUG=1 for the traceback)", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()

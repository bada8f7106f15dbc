"""The one exception type that means "the user gave us something we cannot use".

Everything raised as :class:`AdvisorError` reaches the user as a single line on stderr and
exit code 2 (see :func:`advisor.cli.app.main`). Raise it for bad input (a negative size, a
malformed law file, too few points to fit); let genuine bugs raise anything else.
"""


class AdvisorError(Exception):
    """Bad input or an impossible request; its message is shown to the user as is."""

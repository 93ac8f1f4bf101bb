"""Errors that rilib shows to a user.

Every error a user can cause (an unknown name, missing data, a corrupt checkpoint, a NaN loss) is a
:class:`RilibError`. Its message says what was wrong, what the valid choices are and how to fix it.
The command line prints the message alone, without a traceback, and exits with status 2 for a
:class:`UsageError` and 1 for any other.
"""


class RilibError(Exception):
    """An error with a message meant for the person running rilib."""


class UsageError(RilibError):
    """A mistake in how rilib was asked (an unknown name, a malformed argument): the command line exits with status
    2 for these, and with status 1 for every other :class:`RilibError` (missing data, a corrupt file, a failing
    chapter)."""


class UnknownNameError(UsageError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self):  # KeyError would otherwise quote the message
        return self.args[0] if self.args else ""

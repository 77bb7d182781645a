"""One error hierarchy for the whole package.

Every error raised on purpose by sardespeckle derives from :class:`SardespeckleError`
and, where it makes sense, from the matching builtin, so callers can catch either.
Messages follow the pattern "expected X, got Y" and end with a hint when one helps.
"""


class SardespeckleError(Exception):
    """Base class of every error raised on purpose by sardespeckle."""


class InvalidInputError(SardespeckleError, ValueError):
    """The data handed in cannot be processed (wrong shape, dtype, values...)."""


class UnknownKindError(InvalidInputError):
    """Nothing in a file says whether it holds amplitude or intensity: the kind must be given."""


class UsageError(SardespeckleError, ValueError):
    """The options asked for are inconsistent or unknown (CLI exit code 2)."""


class InputFileError(SardespeckleError, OSError):
    """An input file is missing, unreadable or of an unsupported format."""


class OutputExistsError(SardespeckleError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class OutOfMemoryError(SardespeckleError, MemoryError):
    """Out of memory, with a hint that fits the work that ran out (exit code 1)."""


class OutputFileError(SardespeckleError, OSError):
    """An output cannot be written there (permissions, a read-only or full disk)."""


class WeightsError(SardespeckleError, ValueError):
    """A weights file is missing, corrupt or does not match its architecture."""

"""Errors that the CLI prints as one clear line (the traceback only with ``--debug``)."""


class SuiteError(Exception):
    """Base class for user-facing errors: the message alone must tell the user what to fix."""


class ConfigError(SuiteError):
    """A config key is unknown or its value is invalid. The message names the key."""


class RegistryError(SuiteError):
    """A name is not registered, or registered twice."""


class DataError(SuiteError):
    """A dataset cannot be found, fails its checksum, or holds a malformed row."""


class MalformedRowError(DataError):
    """A row that cannot be parsed. Names the file and the 1-based line number."""

    def __init__(self, path: str, line: int, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{path}:{line}: malformed row: {reason}")


class ModelNotFoundError(SuiteError):
    """A short model name or path that cannot be resolved offline."""


class TeacherError(SuiteError):
    """A teacher backend failed after its bounded retries; answered prompts stay in the store."""

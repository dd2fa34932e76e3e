"""Export errors. Torch-free, so the ONNX runtime can raise them in a process without torch."""

from suite.errors import SuiteError


class ExportParityError(SuiteError):
    """An exported model disagrees with its PyTorch source beyond the spec's tolerance, or a quantised variant
    loses more task metric than allowed. The export is rejected: this is an error, never a warning."""


class ExportIntegrityError(SuiteError):
    """An exported directory is incomplete or a file's sha256 differs from the one recorded in spec.json."""

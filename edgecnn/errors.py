"""The error hierarchy. Every error a user can cause is an EdgeCNNError whose message is one line
saying what is wrong and what to do; the CLI prints it as ``Error: <message>`` and exits with
``exit_code`` (1, or 2 for usage errors) without a traceback unless ``--debug``."""

from __future__ import annotations


class EdgeCNNError(Exception):
    """Base class: a one-line, user-facing message and an exit code."""

    exit_code = 1


class UsageError(EdgeCNNError):
    """The command line itself is wrong (an option value out of range, a malformed size)."""

    exit_code = 2


class MissingFileError(EdgeCNNError):
    """A file or folder named on the command line does not exist (exit 1 in every command, like any
    input that cannot be read; 2 is for options that are wrong in themselves)."""


class UnknownModelError(EdgeCNNError):
    """A model name that is not in the registry."""


class MissingDependencyError(EdgeCNNError):
    """An optional extra (torch, onnx, onnxruntime-gpu) is not installed."""


class ShapeError(EdgeCNNError):
    """An input shape the model cannot take (the feature map vanishes, channels do not fit)."""


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or raise a one-line error naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # torch blocked in sys.modules also lands here
        raise MissingDependencyError(
            f"{purpose} needs {module}, which is not installed; "
            f'install it with: pip install "edgecnn[{extra}]"'
        ) from e


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (its class name when the message is empty),
    for one-line errors that wrap a library's multi-line message."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]

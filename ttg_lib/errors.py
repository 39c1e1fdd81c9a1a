"""Every error TTG raises on purpose, under one base.

The CLI, the notebooks and the supervisor panel catch :class:`TTGError` and show its
message as one line: a TTGError is the user's to fix (a bad value, a broker that does
not answer, a run already holding the broker), never a bug. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class TTGError(Exception):
    """A failure the user can act on; the message says what and how."""


class ConfigError(TTGError, ValueError):
    """A configuration value is not allowed; the message names the field and what is."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field_name}={value!r}: {allowed}")


class ComputeImportError(ConfigError):
    """The compute path does not name an importable callable."""

    def __init__(self, path: str, allowed: str):
        super().__init__("compute", path, allowed)


class MessageError(TTGError, ValueError):
    """A message cannot be decoded; the text is the dead-letter reason."""


class BrokerUnavailable(TTGError, ConnectionError):
    """The broker did not answer; callers reconnect with backoff."""


class RunLocked(TTGError):
    """Another TTG run holds this broker; two runs never share queues."""


class RunError(TTGError):
    """The run could not start or could not finish; the message says why."""


class ClusterError(TTGError):
    """The cluster cannot do what was asked; the message says what and how to fix it."""


class ReportError(TTGError):
    """A report could not be built; the message says which notebook and why."""


class DiskError(TTGError, OSError):
    """The run record cannot be written (disk full, permission denied, read-only)."""


_DISK_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                 errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                 errno.EROFS: "the file system is read-only"}


@contextmanager
def disk_errors(path: object) -> Iterator[None]:
    """Disk full, permission denied, a read-only record: one line naming the path."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, TTGError) or not is_disk_error(exc):
            raise
        raise disk_error(exc, path) from None


def is_disk_error(exc: OSError) -> bool:
    """Disk full, quota, permission denied, read-only: the user's to fix, not a bug."""
    return exc.errno in _DISK_REASONS


def disk_error(exc: OSError, path: object) -> DiskError:
    """One line naming the path and the reason, for an OSError met writing the record."""
    where = exc.filename or path
    reason = _DISK_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return DiskError(f"cannot write {where}: {reason}")


class ResultsError(ConfigError):
    """The results of a run cannot be found or written as asked; one line for the CLI."""

"""The fingerprint of a run's function: what "the same function" means for reuse.

For an import path it hashes the source of the function's module, its qualified name and the
user's ``version`` salt: an edit anywhere in the module changes it (a helper the function
calls may live beside it), an edit elsewhere does not. A function shipped by value is its
payload's sha256 (the pickle carries the code), salted the same way. The salt lets a user
say "the code changed in a way you cannot see" (a data file, a dependency).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util

from ..config import RunConfig
from ..errors import ConfigError

PREFIX = "fp1:"  # the scheme, should it ever change: fingerprints of another scheme never match


def function_fingerprint(config: RunConfig) -> str:
    """``fp1:<sha256 hex>`` of the run's function (after :func:`byvalue.for_run`)."""
    digest = hashlib.sha256()
    if config.compute_sha256:
        digest.update(b"by-value\0" + config.compute_sha256.encode())
    else:
        module, _, qualname = config.compute.partition(":")
        digest.update(b"import\0" + module_source(module) + b"\0" + qualname.encode())
    digest.update(b"\0version\0" + config.version.encode())
    return PREFIX + digest.hexdigest()


def identified(config: RunConfig, shipped_sha256: str | None, resume: bool) -> RunConfig:
    """The config carrying its function's identity: the payload's sha256 when it travels by
    value, and the fingerprint reuse matches on (a resumed run keeps the one it began with)."""
    if shipped_sha256 is not None:
        config = dataclasses.replace(config, compute_sha256=shipped_sha256)
    if resume and config.fingerprint:
        return config
    return dataclasses.replace(config, fingerprint=function_fingerprint(config))


def module_source(module: str) -> bytes:
    """The bytes of the module's source file (its spec's origin: no import needed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if not origin or origin in ("built-in", "frozen"):
        return b"module:" + module.encode()  # no source to read: its name stands for it
    try:
        with open(origin, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError("compute", module, f"its source {origin} cannot be read to "
                                             f"fingerprint the function ({exc})") from None

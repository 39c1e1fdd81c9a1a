"""Failure points for the crash-consistency test: ``TTG_CRASH_AT=<point>[:<n>]`` makes the
orchestrator die (``os._exit``, as a SIGKILL would leave things) the ``n``-th time it
reaches ``point``. Unset, :func:`reach` is one dictionary lookup.

Points, in the order a result meets them: ``part-written`` (a part fsynced under its
temporary name), ``part-renamed`` (renamed, its directory not yet fsynced), ``flushed`` (on
disk, the broker not yet told), ``settled`` (the broker dropped its copies), then at close
``table-written`` (results.parquet.tmp complete), ``parts-aside`` (the parts moved aside,
the table not yet in place) and ``table-in-place`` (the parts not yet removed).
"""

from __future__ import annotations

import os

POINTS = ("part-written", "part-renamed", "flushed", "settled", "table-written",
          "parts-aside", "table-in-place")
_SPEC = os.environ.get("TTG_CRASH_AT", "")
_POINT, _, _NTH = _SPEC.partition(":")
_seen = 0


def reach(point: str) -> None:
    """Die here if this is the configured failure point's ``n``-th visit."""
    global _seen
    if not _SPEC or point != _POINT:
        return
    _seen += 1
    if _seen >= int(_NTH or 1):
        os._exit(137)

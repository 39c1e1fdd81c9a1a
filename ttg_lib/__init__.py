"""TTG: fault-tolerant distributed parameter sweeps with verified results."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``ttg_lib.load_results``, ``ttg_lib.sweep`` and ``ttg_lib.resume`` without importing
    pyarrow on ``import ttg_lib`` (workers)."""
    if name == "load_results":
        from .results import load_results
        return load_results
    if name in ("sweep", "resume", "Sweep"):  # the Python API (api.py)
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'ttg_lib' has no attribute {name!r}")

"""TTG: fault-tolerant distributed parameter sweeps with verified results."""

__version__ = "0.1.0"

"""Parameter spaces: named axes, and a point for every index without building the space.

A space file (YAML or JSON) or the same dict::

    mode: grid                       # grid (Cartesian product, default) | zip | random
    samples: 500                     # random only: how many points
    seed: 0                          # random only
    axes:
      lr: {logspace: [-3, -1, 5]}    # 10^-3 .. 10^-1, 5 values, ends included
      depth: [2, 4, 6, 8]            # a list of values (numbers, strings, booleans)
      seed: {range: [0, 3]}          # 0, 1, 2 (stop excluded; optional third item: step)
      x: {linspace: [0.0, 1.0, 11]}  # ends included
      y: {uniform: [0.0, 1.0]}       # random only; also loguniform
    derived:                         # axes computed from the others (safe expressions)
      width: 2 ** depth
    where: "lr < 0.05 or depth != 4" # keep only the points where this holds

or ``union: [space, space, ...]`` of such spaces (same axes), itself with derived/where.

A task still carries only ``start`` and ``count``: every space computes point ``i`` from
``i`` (:mod:`.product`), a filter through a compact block index (:mod:`.constrained`), a
union through its parts' offsets (:mod:`.union`). Modules: :mod:`.base` (the interface),
:mod:`.axes` and :mod:`.forms` (axes and how they are written), :mod:`.expr` (the expression
language), :mod:`.load` (loading and validation).
"""

from .axes import Axis
from .base import MAX_POINTS, RESERVED, Scalar, Space, SpaceError
from .constrained import ConstrainedSpace, DerivedAxis
from .describe import describe_space, format_preview, preview, run_preview
from .forms import ALL_FORMS, DISCRETE_FORMS
from .load import build_space, check_signature, load_space
from .product import MODES, ProductSpace
from .union import UnionSpace

__all__ = ["ALL_FORMS", "DISCRETE_FORMS", "MAX_POINTS", "MODES", "RESERVED", "Axis",
           "ConstrainedSpace", "DerivedAxis", "ProductSpace", "Scalar", "Space", "SpaceError",
           "UnionSpace", "build_space", "check_signature", "describe_space", "format_preview",
           "load_space", "preview", "run_preview"]

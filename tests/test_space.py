"""Parameter spaces: the format of issue 13 as written, a point per index, one clear error per
bad space. No broker involved."""

from __future__ import annotations

import itertools
import json
import math
import tracemalloc

import numpy as np
import pytest

from ttg_lib.config import ConfigError
from ttg_lib.space import MAX_POINTS, Space, SpaceError, check_signature, load_space

ISSUE_EXAMPLE = """\
mode: random                     # grid (Cartesian product, default) | zip | random
samples: 500                     # random only: how many points
seed: 0                          # random only
axes:
  lr: {logspace: [-3, -1, 5]}    # 10^-3 .. 10^-1, 5 values, ends included
  depth: [2, 4, 6, 8]            # a list of values (numbers, strings, booleans)
  seed: {range: [0, 3]}          # 0, 1, 2 (stop excluded; optional third item: step)
  x: {linspace: [0.0, 1.0, 11]}  # ends included
  y: {uniform: [0.0, 1.0]}       # random only; also loguniform
"""


def grid_543() -> Space:
    return load_space({"axes": {"a": {"linspace": [0.0, 1.0, 5]}, "b": ["w", "x", "y", "z"],
                                "c": {"range": [10, 16, 2]}}})


def assert_columns_match_points(space: Space, start: int, count: int) -> None:
    """The numpy path and the plain-Python path give the same values, bit for bit."""
    columns = space.columns(start, count)
    points = space.points(start, count)
    for name in space.axis_names:
        assert [p[name] for p in points] == columns[name].tolist(), name


def test_a_5x4x3_grid_has_60_points_in_mixed_radix_order():
    space = grid_543()
    assert space.size == 60 and space.mode == "grid"
    assert space.axis_names == ("a", "b", "c")
    expected = list(itertools.product([0.0, 0.25, 0.5, 0.75, 1.0], "wxyz", [10, 12, 14]))
    assert [tuple(space.point(i).values()) for i in range(60)] == expected
    assert space.points(0, 60) == [space.point(i) for i in range(60)]
    assert space.axes[0].table == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert space.points(17, 9) == [space.point(i) for i in range(17, 26)]
    assert_columns_match_points(space, 0, 60)
    assert_columns_match_points(space, 23, 11)
    columns = space.columns(0, 60)
    assert columns["a"].dtype == np.float64 and columns["c"].dtype == np.int64
    assert columns["b"].dtype.kind == "U"


def test_axis_forms_give_the_values_numpy_gives():
    space = load_space({"axes": {"lin": {"linspace": [-1.5, 2.0, 7]},
                                 "log": {"logspace": [-3, -1, 5]},
                                 "r": {"range": [0.0, 1.0, 0.1]},
                                 "flag": [True, False], "n": [1, 2.5]}})
    lin, log, r, flag, n = space.axes
    assert [lin.at(i) for i in range(lin.length)] == np.linspace(-1.5, 2.0, 7).tolist()
    np.testing.assert_allclose([log.at(i) for i in range(log.length)],
                               np.logspace(-3, -1, 5), rtol=1e-15)
    assert log.at(0) == 0.001 and log.at(4) == 0.1
    assert [r.at(i) for i in range(r.length)] == np.arange(0.0, 1.0, 0.1).tolist()
    assert [flag.at(0), flag.at(1)] == [True, False] and flag.kind == "bool"
    assert n.kind == "float" and n.at(0) == 1.0 and type(n.at(0)) is float  # one typed column
    assert_columns_match_points(space, 0, space.size)


def test_zip_pairs_axes_position_by_position():
    space = load_space({"mode": "zip", "axes": {"lr": [0.1, 0.01, 0.001],
                                                "name": ["a", "b", "c"],
                                                "k": {"range": [5, 8]}}})
    assert space.size == 3
    assert space.points(0, 3) == [{"lr": 0.1, "name": "a", "k": 5},
                                  {"lr": 0.01, "name": "b", "k": 6},
                                  {"lr": 0.001, "name": "c", "k": 7}]
    assert_columns_match_points(space, 0, 3)


def test_random_is_the_same_every_time_and_changes_with_the_seed():
    spec = {"mode": "random", "samples": 2_000, "seed": 7,
            "axes": {"depth": [2, 4, 6, 8], "k": {"range": [0, 1000]},
                     "x": {"uniform": [-1.0, 1.0]}, "lr": {"loguniform": [1e-5, 1e-1]},
                     "act": ["relu", "tanh"]}}
    first = load_space(spec).points(0, 2_000)
    assert load_space(json.loads(json.dumps(spec))).points(0, 2_000) == first
    other = load_space({**spec, "seed": 8}).points(0, 2_000)
    assert other != first
    assert sum(a == b for a, b in zip(first, other, strict=True)) < 20
    # every draw is in its axis, and the draws spread over it
    assert {p["depth"] for p in first} == {2, 4, 6, 8}
    assert {p["act"] for p in first} == {"relu", "tanh"}
    assert all(0 <= p["k"] < 1000 for p in first) and len({p["k"] for p in first}) > 800
    xs = [p["x"] for p in first]
    assert all(-1.0 <= x < 1.0 for x in xs) and abs(sum(xs) / len(xs)) < 0.1
    lrs = [p["lr"] for p in first]
    assert all(1e-5 <= v <= 1e-1 for v in lrs)
    decades = [sum(10**-(d + 1) <= v < 10**-d for v in lrs) for d in range(1, 5)]
    assert min(decades) > 350  # uniform in the exponent: about 500 a decade


def test_random_points_are_computed_per_index():
    space = load_space({"mode": "random", "samples": 10_000, "seed": 3,
                        "axes": {"a": {"range": [0, 10**6]}, "u": {"uniform": [0.0, 1.0]},
                                 "lu": {"loguniform": [0.5, 2.0]}}})
    whole = space.points(0, 3_000)
    assert space.points(1_234, 10) == whole[1_234:1_244]  # a chunk alone = the same chunk
    assert [space.point(i) for i in range(3_000)] == whole  # plain Python = numpy, bit for bit
    assert_columns_match_points(space, 0, 3_000)
    # adding an axis leaves the others' draws as they were (keyed by axis name)
    wider = load_space({"mode": "random", "samples": 10_000, "seed": 3,
                        "axes": {"extra": [1, 2], "a": {"range": [0, 10**6]},
                                 "u": {"uniform": [0.0, 1.0]}, "lu": {"loguniform": [0.5, 2.0]}}})
    assert [{k: p[k] for k in ("a", "u", "lu")} for p in wider.points(0, 100)] == whole[:100]


def test_a_point_near_a_billion_costs_no_memory():
    space = load_space({"axes": {"i": {"range": [0, 1000]}, "j": {"linspace": [0, 1, 1000]},
                                 "k": {"logspace": [0, 3, 1000]}}})
    assert space.size == MAX_POINTS
    tracemalloc.start()
    try:
        last = space.point(MAX_POINTS - 1)
        chunk = space.points(MAX_POINTS - 1_000, 1_000)
        columns = space.columns(MAX_POINTS - 1_000, 1_000)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last == {"i": 999, "j": 1.0, "k": 1000.0} == chunk[-1]
    assert columns["i"][-1] == 999 and len(columns["k"]) == 1_000
    assert peak < 2_000_000, f"{peak:,} bytes for one chunk of a 10^9-point space"
    random = load_space({"mode": "random", "samples": MAX_POINTS, "axes": {
        "x": {"uniform": [0, 1]}, "n": {"range": [0, 10**12]}}})
    tail = random.points(MAX_POINTS - 3, 3)
    assert random.point(MAX_POINTS - 1) == tail[-1]
    assert_columns_match_points(random, MAX_POINTS - 500, 500)
    with pytest.raises(IndexError):
        space.point(MAX_POINTS)


def test_files_and_inline_text_load_the_same_space(tmp_path):
    yaml_file = tmp_path / "sweep.yaml"
    yaml_file.write_text(ISSUE_EXAMPLE)
    space = load_space(yaml_file)
    assert space.mode == "random" and space.size == 500 and space.seed == 0
    assert space.axis_names == ("lr", "depth", "seed", "x", "y")
    json_file = tmp_path / "sweep.json"
    json_file.write_text(json.dumps(space.to_dict()))
    assert load_space(json_file) == space == load_space(str(yaml_file))
    assert load_space(space.to_dict()).points(0, 50) == space.points(0, 50)
    inline = load_space("{axes: {lr: {loguniform: [1e-5, 1e-1]}}, mode: random, samples: 4}")
    assert inline.axes[0].a == 1e-5  # YAML 1.1 would read 1e-5 as a string
    assert load_space(inline) is inline


BAD_SPACES = [
    ({"axes": {"depth": []}}, "axes.depth", "empty"),
    ({"axes": {"depth": {"range": [5, 5]}}}, "axes.depth", "empty"),
    ({"axes": {"x": {"linspace": [0, 1, 0]}}}, "axes.x", "empty"),
    ({"mode": "grd", "axes": {"a": [1]}}, "mode", "grid, zip, random"),
    ({"axes": {"lr": {"logspce": [-3, -1, 5]}}}, "axes.lr", "unknown axis form 'logspce'"),
    ({"axes": {"lr": 0.1}}, "axes.lr", "a list of values"),
    ({"axes": {"seed": {"range": ["a", 3]}}}, "axes.seed", "finite numbers"),
    ({"axes": {"seed": {"range": [0, True]}}}, "axes.seed", "finite numbers"),
    ({"axes": {"seed": {"range": [0, 3, 0]}}}, "axes.seed", "step must not be 0"),
    ({"axes": {"y": {"uniform": [0, 1]}}}, "axes.y", "only allowed in mode random"),
    ({"mode": "zip", "axes": {"a": [1], "y": {"loguniform": [1, 2]}}}, "axes.y",
     "only allowed in mode random"),
    ({"mode": "random", "samples": 0, "axes": {"a": [1]}}, "samples", "from 1 to"),
    ({"mode": "random", "axes": {"a": [1]}}, "samples", "needs samples"),
    ({"mode": "random", "samples": 10**9 + 1, "axes": {"a": [1]}}, "samples", "from 1 to"),
    ({"axes": {"a": {"range": [0, 10**5]}, "b": {"range": [0, 10**5]}}}, "axes",
     "a (100,000) x b (100,000)"),
    ({"mode": "zip", "axes": {"a": [1, 2, 3], "b": [1, 2]}}, "axes.b", "'a' has 3, 'b' has 2"),
    ({"axes": {"a": [1, "two"]}}, "axes.a", "values of one kind"),
    ({"axes": {"a": [1, None]}}, "axes.a", "numbers, strings or booleans"),
    ({"axes": {"a": [[1, 2]]}}, "axes.a", "numbers, strings or booleans"),
    ({"axes": {"error": [1]}}, "axes.error", "taken by a results column"),
    ({"axes": {"learning-rate": [1]}}, "axes.learning-rate", "Python identifier"),
    ({"axes": {"a": {"loguniform": [0, 1]}}, "mode": "random", "samples": 3}, "axes.a",
     "0 < a < b"),
    ({"axes": {"a": {"logspace": [0, 400, 3]}}}, "axes.a", "finite"),
    ({"axes": {"a": [1]}, "samples": 4}, "samples", "only for mode random"),
    ({"axes": {"a": [1]}, "sead": 4}, "sead", "unknown key"),
    ({"axes": {}}, "axes", "at least one axis"),
]


@pytest.mark.parametrize(("spec", "where", "says"), BAD_SPACES,
                         ids=[f"{w}:{s}" for _spec, w, s in BAD_SPACES])
def test_every_bad_space_is_one_clear_error(spec, where, says):
    with pytest.raises(SpaceError) as caught:
        load_space(spec)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the CLI prints it as one line
    assert message.startswith(f"invalid {where}="), message
    assert says in message, message
    assert "\n" not in message and len(message) < 400


def test_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(SpaceError, match="file does not exist"):
        load_space(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("axes: {a: [1, 2\n")
    with pytest.raises(SpaceError, match=r"^invalid space=.*not valid YAML or JSON"):
        load_space(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(SpaceError, match="must hold a mapping"):
        load_space(listed)


def simulate(lr, depth, seed=0):
    return lr * depth + seed


def test_the_function_must_take_every_axis_as_a_keyword():
    space = load_space({"axes": {"lr": [0.1], "depth": [2], "seed": [0, 1]}})
    check_signature(space, simulate)
    check_signature(space, lambda **point: 0)
    with pytest.raises(SpaceError) as caught:
        check_signature(space, lambda lr, seed: 0, name="pkg.mod:fn")
    message = str(caught.value)
    assert "'depth'" in message and "pkg.mod:fn(lr, seed)" in message
    assert message.startswith("invalid compute=")
    with pytest.raises(SpaceError, match="requires 'extra', which is no axis"):
        check_signature(space, lambda lr, depth, seed, extra: 0)
    with pytest.raises(SpaceError, match="'lr'"):
        check_signature(space, lambda lr, /, depth, seed: 0)  # positional-only


def test_a_chunk_outside_the_space_is_refused():
    space = grid_543()
    with pytest.raises(IndexError, match="outside this space of 60 points"):
        space.points(55, 10)
    with pytest.raises(IndexError):
        space.columns(-1, 2)
    assert space.points(60, 0) == [] and math.prod(a.length for a in space.axes) == 60


# --- extending a space (issue 22, item 2): the points already computed stay the same --------

def test_a_random_space_with_more_samples_keeps_its_first_points():
    axes = {"depth": [2, 4, 6, 8], "u": {"uniform": [0.0, 1.0]},
            "lr": {"loguniform": [1e-5, 1e-1]}, "k": {"range": [0, 10**9]}}
    small = load_space({"mode": "random", "samples": 500, "seed": 11, "axes": axes})
    large = load_space({"mode": "random", "samples": 1_000, "seed": 11, "axes": axes})
    assert large.points(0, 500) == small.points(0, 500)  # point i depends on (seed, i) only
    for name, column in small.columns(0, 500).items():
        assert np.array_equal(large.columns(0, 500)[name], column)  # the same bits
    assert large.points(500, 500) != small.points(0, 500)  # the added 500 are new draws


def test_a_grid_widens_predictably():
    old = load_space({"axes": {"a": [1, 2, 3, 4, 5], "b": [10, 20, 30, 40]}})
    # a value added to the first (slowest) axis: the old points are the new grid's prefix
    wider_first = load_space({"axes": {"a": [1, 2, 3, 4, 5, 6], "b": [10, 20, 30, 40]}})
    assert wider_first.points(0, old.size) == old.points(0, old.size)
    assert wider_first.size - old.size == 4
    # a value added to another axis: every old point is still there, in the same order
    wider_b = load_space({"axes": {"a": [1, 2, 3, 4, 5], "b": [10, 20, 30, 40, 50]}})
    new = [tuple(p.values()) for p in wider_b.points(0, wider_b.size)]
    kept = [tuple(p.values()) for p in old.points(0, old.size)]
    assert [p for p in new if p in set(kept)] == kept and len(set(new) - set(kept)) == 5


def test_a_refined_linspace_shares_exactly_the_values_that_are_equal_as_floats():
    """Floats are compared by exact value: a refined linspace shares the points whose
    values coincide bit for bit, and no others."""
    coarse = load_space({"axes": {"x": {"linspace": [0.0, 1.0, 5]}}}).columns(0, 5)["x"]
    fine = load_space({"axes": {"x": {"linspace": [0.0, 1.0, 9]}}}).columns(0, 9)["x"]
    assert set(coarse.tolist()) <= set(fine.tolist())  # 0.25 steps are exact binary fractions
    tenths = [p["x"] for p in load_space({"axes": {"x": {"linspace": [0.0, 1.0, 11]}}})
              .points(0, 11)]
    thirtieths = [p["x"] for p in load_space({"axes": {"x": {"linspace": [0.0, 1.0, 31]}}})
                  .points(0, 31)]
    # 3 * 0.1 and 9 * (1/30) round differently: the "same" 0.3 is two floats, two points
    assert tenths[3] == 0.30000000000000004 and thirtieths[9] == 0.3
    differ = [i for i in range(11) if tenths[i] != thirtieths[3 * i]]
    assert differ == [3, 6, 7]

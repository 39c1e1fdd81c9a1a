"""Constrained spaces (issue 22, item 3): ``union``, ``where`` and ``derived``. The points are
exactly those a direct Python filter gives, on a 10^6-point candidate space, chunk by chunk;
a bad expression is one clear error naming it. No broker involved."""

from __future__ import annotations

import itertools
import json
import math
import random
import time
import tracemalloc

import numpy as np
import pytest

from ttg_lib.space import ConstrainedSpace, SpaceError, build_space, check_signature, load_space
from ttg_lib.space import constrained as constrained_module

GRID_1M = {"axes": {"a": {"range": [0, 100]}, "b": {"range": [0, 100]},
                    "depth": {"range": [0, 100]}}}  # 10^6 candidates


def rows(space, start: int = 0, count: int | None = None) -> list[tuple]:
    """The space's points as tuples, read through numpy columns (the results table's path)."""
    count = space.size - start if count is None else count
    columns = space.columns(start, count)
    return list(zip(*(columns[name].tolist() for name in space.axis_names), strict=True))


def test_where_on_a_million_candidates_gives_exactly_the_python_filter():
    space = load_space({**GRID_1M, "where": "a < b and depth != 4"})
    expected = [(a, b, d) for a, b, d in itertools.product(range(100), repeat=3)
                if a < b and d != 4]
    assert space.size == len(expected) == 4950 * 99
    assert rows(space) == expected
    rng = random.Random(1)
    for _ in range(40):  # chunks anywhere, across the index's block boundaries
        start = rng.randrange(space.size)
        count = rng.randint(1, min(5000, space.size - start))
        assert space.points(start, count) == [dict(zip("ab", p[:2], strict=True), depth=p[2])
                                              for p in expected[start:start + count]]
    assert space.point(space.size - 1) == {"a": 98, "b": 99, "depth": 99}
    assert isinstance(space, ConstrainedSpace) and space.index_bytes < 2_000  # 245 blocks


def test_union_of_filtered_parts_gives_exactly_the_python_filters_in_turn():
    space = load_space({"union": [
        {**GRID_1M, "where": "a + b < depth"},
        {"mode": "zip", "axes": {"depth": {"range": [0, 1000]}, "a": {"range": [0, 1000]},
                                 "b": {"range": [0, 1000]}}, "where": "a % 3 == 0"},
        {"axes": {"a": [7], "b": [8], "depth": [9]}},
    ]})
    expected = [(a, b, d) for a, b, d in itertools.product(range(100), repeat=3) if a + b < d]
    expected += [(i, i, i) for i in range(1000) if i % 3 == 0] + [(7, 8, 9)]
    assert space.mode == "union" and space.axis_names == ("a", "b", "depth")
    assert space.size == len(expected) and rows(space) == expected
    boundary = len(expected) - 340  # a chunk across all three parts
    assert rows(space, boundary - 5, 345) == expected[boundary - 5:]


def test_derived_axes_are_computed_from_the_others_and_can_be_filtered_on():
    space = load_space({"axes": {"log_width": {"range": [0, 12]}, "lr": [0.1, 0.01]},
                        "derived": {"width": "2 ** log_width", "ratio": "lr * width / 3",
                                    "big": "width >= 256"},
                        "where": "not big or lr < 0.05"})
    expected = [(lw, lr, 2**lw, lr * 2**lw / 3, 2**lw >= 256)
                for lw, lr in itertools.product(range(12), [0.1, 0.01])
                if not 2**lw >= 256 or lr < 0.05]
    assert rows(space) == expected
    assert space.kinds == {"log_width": "int", "lr": "float", "width": "int", "ratio": "float",
                           "big": "bool"}
    assert type(space.point(3)["width"]) is int and type(space.point(3)["big"]) is bool
    assert space.columns(0, space.size)["width"].dtype == np.int64


def test_functions_conditionals_strings_and_membership():
    space = load_space({"axes": {"model": ["cnn", "mlp", "rnn"], "x": {"linspace": [0, 4, 5]}},
                        "derived": {"y": "sqrt(x) if model == 'cnn' else max(x, 2) - 1",
                                    "k": "floor(x / 3) + round(2.5)"},
                        "where": "model not in ('rnn',) and 0 < x <= 3.5"})
    expected = []
    for model, x in itertools.product(["cnn", "mlp", "rnn"], [0.0, 1.0, 2.0, 3.0, 4.0]):
        if model != "rnn" and 0 < x <= 3.5:
            y = math.sqrt(x) if model == "cnn" else max(x, 2) - 1
            expected.append((model, x, y, math.floor(x / 3) + round(2.5)))
    assert rows(space) == expected


def test_a_saved_space_loads_back_the_same(tmp_path):
    spec = {"union": [{**GRID_1M, "where": "a < b"},
                      {"mode": "random", "samples": 50, "seed": 3,
                       "axes": {"a": {"range": [0, 9]}, "b": [1], "depth": [1, 2]}}],
            "derived": {"s": "a + b + depth"}, "where": "s % 2 == 0"}
    space = load_space(spec)
    again = load_space(json.loads(json.dumps(space.to_dict())))
    assert again.to_dict() == space.to_dict() and again.size == space.size
    assert rows(again, 1000, 500) == rows(space, 1000, 500)
    path = tmp_path / "space.yaml"
    path.write_text("union:\n  - axes: {a: [1, 2], b: [3]}\n  - axes: {b: [4], a: [5]}\n"
                    "derived:\n  width: 2 ** a\nwhere: a != 2\n")
    assert load_space(path).points(0, 2) == [{"a": 1, "b": 3, "width": 2},
                                            {"a": 5, "b": 4, "width": 32}]


def test_the_index_works_across_many_blocks_and_passes(monkeypatch):
    """Small blocks and passes, so a chunk spans several of each."""
    monkeypatch.setattr(constrained_module, "BLOCK", 16)
    monkeypatch.setattr(constrained_module, "SCAN", 64)
    space = build_space({"axes": {"i": {"range": [0, 20_000]}, "tag": ["x", "y"]},
                        "where": "(i * 7919) % 13 < 3 or i > 19_990"})
    expected = [(i, t) for i, t in itertools.product(range(20_000), "xy")
                if (i * 7919) % 13 < 3 or i > 19_990]
    assert rows(space) == expected
    for start in (0, 1, 63, 64, 65, 1000, len(expected) - 300):
        assert rows(space, start, 300) == expected[start:start + 300]


def test_memory_stays_flat_for_a_chunk_of_a_filtered_space():
    space = load_space({**GRID_1M, "where": "depth % 10 == 0"})
    tracemalloc.start()
    try:
        space.points(space.size // 2, 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # two blocks of candidates, not the space


@pytest.mark.slow  # 10^8 candidates: a few seconds of numpy on a quiet machine
def test_a_hundred_million_candidates_are_counted_in_seconds_with_a_small_index():
    t0 = time.perf_counter()
    space = load_space({"axes": {"a": {"range": [0, 10_000]}, "b": {"range": [0, 10_000]}},
                        "where": "a < b"})
    counted = time.perf_counter() - t0
    assert space.size == 10_000 * 9_999 // 2
    assert counted < 60, f"{counted:.1f} s"  # ~4 s on a loaded 2-core machine
    assert space.index_bytes < 256 * 1024
    t0 = time.perf_counter()
    assert space.point(space.size - 1) == {"a": 9998, "b": 9999}
    assert space.points(space.size // 2, 1000)[0]["a"] < space.points(space.size - 1, 1)[0]["a"]
    assert time.perf_counter() - t0 < 1.0


BAD = [
    ("where", "a < c", "unknown name 'c'"),
    ("where", "__import__('os').system('true')", "not allowed"),
    ("where", "().__class__", "not allowed"),
    ("where", "a.real > 0", "attribute access"),
    ("where", "open('x') == 1", "the call open(...) is not allowed"),
    ("where", "[x for x in (1, 2)] == a", "not allowed"),
    ("where", "a[0] == 1", "indexing"),
    ("where", "lambda: True", "lambda"),
    ("where", "(a := 3) > 1", "assignment"),
    ("where", "a <", "not a valid expression"),
    ("where", "a + b", "a condition"),
    ("where", "a and b", "needs a condition"),
    ("where", "s < 1", "compares text with a number"),
    ("where", "a in b", "in takes a tuple of constants"),
    ("where", "sqrt(a, b) > 1", "sqrt() takes one"),
    ("where", "", "an expression written as text"),
    ("where", "-" * 990 + "a > 0", "nested more than 100 levels"),
    ("where", "+".join(["a"] * 400) + " > 0", "nested more than 100 levels"),
    ("where", "a\x00 > 0", "not a valid expression"),
    ("where", 5, "an expression written as text"),
    ("where", "a > 99", "no point of the space passes the filter"),
    ("derived", {"b": "a + 1"}, "'b' is an axis already"),
    ("derived", {"error": "a + 1"}, "taken by a results column"),
    ("derived", {"w": "s + 1"}, "needs numbers"),
    ("derived", {"w": "log(a)"}, "must be a finite number"),
    ("derived", {"w": "2 ** -a"}, "negative power"),
    ("derived", {"w": "a // (a - 1)"}, "divided by zero"),
    ("derived", {"w": "(a + 1) * 9_000_000_000_000_000_000"}, "beyond 64 bits"),
    ("derived", {"w": "(a + 7) ** 30"}, "beyond 64 bits"),
    ("derived", ["w"], "a mapping of new axis names"),
]


@pytest.mark.parametrize(("key", "value", "says"), BAD)
def test_a_bad_expression_is_one_clear_error_naming_it(key, value, says):
    spec = {"axes": {"a": [0, 1, 2], "b": [1.5], "s": ["x"]}, key: value}
    with pytest.raises(SpaceError) as info:
        load_space(spec)
    message = str(info.value)
    assert says in message, message
    assert message.startswith(f"invalid {key}"), message
    if key == "where" and isinstance(value, str) and value:
        assert repr(value)[:60].strip("'\"") in message or value in message


@pytest.mark.parametrize(("spec", "says"), [
    ({"union": [{"axes": {"a": [1]}}, {"axes": {"b": [1]}}]}, "union[1]"),
    ({"union": [{"axes": {"a": [1]}}, {"axes": {"a": [1.0]}}]}, "union[1].a"),
    ({"union": [{"axes": {"a": [1]}}, {"axes": {"a": {"rng": [1]}}}]}, "union[1].axes.a"),
    ({"union": [{"axes": {"a": [1]}}], "axes": {"a": [2]}}, "a union takes its axes"),
    ({"union": []}, "a list of one or more spaces"),
    ({"union": [{"axes": {"a": [1]}, "where": "a > 1"}]}, "union[0].where"),
])
def test_a_bad_union_is_one_clear_error_naming_the_part(spec, says):
    with pytest.raises(SpaceError, match=r"invalid ") as info:
        load_space(spec)
    assert says in str(info.value), str(info.value)


def test_the_function_must_take_derived_axes_too():
    space = load_space({"axes": {"x": [1, 2]}, "derived": {"y": "x * 2"}})

    def takes_x(x):
        return x

    with pytest.raises(SpaceError, match="does not take axis 'y'"):
        check_signature(space, takes_x)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sweep_over_a_constrained_union_computes_exactly_the_filtered_points(
        make_config, backend_name, broker_url):
    """The acceptance run: 10^6 candidates in the first part, a filter, derived axes and a
    union; the table's rows are the points a direct Python filter gives, each equal to a
    direct call."""
    from ttg_lib import load_results
    from ttg_lib.examples import train
    from ttg_lib.run import execute

    lrs = load_space({"axes": {"lr": {"logspace": [-3, -1, 1000]}}}).columns(0, 1000)["lr"]
    space = {"union": [
        {"axes": {"lr": {"logspace": [-3, -1, 1000]}, "depth": {"range": [0, 1000]}},
         "derived": {"seed": "depth % 3"}, "where": "depth % 100 == 7 and lr < 0.00105"},
        {"mode": "zip", "axes": {"depth": [1, 2, 3], "lr": [0.5, 0.25, 0.125]},
         "derived": {"seed": "depth * 2"}}]}
    expected = [(lr, depth, depth % 3) for lr, depth in itertools.product(lrs.tolist(),
                                                                          range(1000))
                if depth % 100 == 7 and lr < 0.00105]
    expected += [(0.5, 1, 2), (0.25, 2, 4), (0.125, 3, 6)]
    summary = execute(make_config(backend=backend_name, space=space, workers=2, chunk_size=7,
                                  compute="ttg_lib.examples:train"))
    assert summary["ok"], summary["problems"]
    df = load_results(summary["record_dir"]).sort_values("param_id")
    assert list(df.columns[:4]) == ["param_id", "lr", "depth", "seed"]
    assert list(zip(df["lr"], df["depth"], df["seed"], strict=True)) == expected
    for row in df.itertuples():
        assert row._5 == train(row.lr, row.depth, row.seed)["loss"]

"""Reuse across runs on the real brokers (issue 22, items 1 and 2): a grid with a wider
axis computes only its new points and checks a sample of the reused ones on the workers; a
changed function reuses nothing; a reused value tampered with on disk gets its source run
rejected and recomputed; a random space with more samples computes only the added ones.

The function lives in a module of the test's own directory, so it is shipped by value; it
notes every call in a file (the workers inherit the environment), which is how these tests
know what the workers computed."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ttg_lib import compute, load_results
from ttg_lib.examples import train
from ttg_lib.run import execute

MODEL = textwrap.dedent("""\
    import os
    from ttg_lib.examples import train

    def f(lr, depth):
        with open(os.environ["REUSE_CALLS"], "a") as calls:
            calls.write(f"{lr!r} {depth!r}\\n")
        return train(lr, depth){tweak}
    """)


def grid(n: int) -> dict:
    return {"axes": {"lr": [0.001 * (i + 1) for i in range(n)], "depth": [2, 4, 6, 8]}}


@pytest.fixture
def model(tmp_path, monkeypatch):
    """Writes the module (``tweak``: a change to its body) and returns the calls file."""
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("REUSE_CALLS", str(calls))

    def write(tweak: str = "") -> Path:
        (tmp_path / "reusemodel.py").write_text(MODEL.replace("{tweak}", tweak))
        sys.modules.pop("reusemodel", None)
        importlib.invalidate_caches()
        compute.load.cache_clear()  # as a new process would: the module as it is now
        calls.write_text("")
        return calls

    yield write
    sys.modules.pop("reusemodel", None)


def sweep(make_config, backend_name, space, lines=None, **options):
    config = make_config(backend=backend_name, space=space, workers=2, chunk_size=3, timeout_s=20,
                         compute="reusemodel:f", **options)
    return execute(config, say=(lines.append if lines is not None else None))


def called(calls: Path) -> list[tuple[float, int]]:
    return [(float(a), int(b)) for a, b in (line.split() for line in
                                            calls.read_text().splitlines())]


def assert_direct(summary: dict) -> None:
    df = load_results(summary["record_dir"]).sort_values("param_id")
    for row in df.itertuples():
        expected = train(row.lr, row.depth)
        assert (row._4, row._5) == (expected["loss"], expected["accuracy"])


@pytest.mark.parametrize("window", [None, 2], ids=["tasks-all-out", "window-of-2"])
def test_a_wider_axis_computes_only_the_new_points_and_checks_a_sample_of_the_rest(
        make_config, backend_name, broker_url, model, monkeypatch, window):
    """(With a window of 2 chunks, the held chunks come out once, when the verdict asks.)"""
    if window:
        from ttg_lib import window as window_module

        monkeypatch.setattr(window_module, "WINDOW_POINTS", 1)
        monkeypatch.setattr(window_module, "WINDOW_PER_WORKER", window // 2)
    model()
    first = sweep(make_config, backend_name, grid(5))
    assert first["ok"] and first["points_reused"] == 0 and first["points_computed"] == 20
    calls = model()  # the same module again: the same fingerprint
    lines: list[str] = []
    second = sweep(make_config, backend_name, grid(6), lines)
    assert second["ok"], second["problems"]
    assert second["duplicate_deliveries"] == 0
    assert second["fingerprint"] == first["fingerprint"]
    assert (second["points_reused"], second["points_computed"]) == (20, 4)
    reuse = second["reuse"]
    assert reuse["sources"] == {first["run_id"]: 20} and not reuse["rejected"]
    assert 1 <= reuse["points_checked"] < 20  # a sample, recomputed on the workers
    done = called(calls)
    new = [c for c in done if c[0] == pytest.approx(0.006)]
    assert sorted(set(new)) == [(0.006, d) for d in (2, 4, 6, 8)]  # computed (and maybe
    assert len(new) <= 8  # verified once): never more
    assert len(done) - len(new) == reuse["points_checked"]  # old points: only the checks
    assert any("20 of 24 points computed before" in line for line in lines)
    df = load_results(second["record_dir"])
    assert len(df) == 24 and sorted(df["param_id"]) == list(range(24))
    by_source = df.groupby("source_run").size().to_dict()
    assert by_source == {first["run_id"]: 20, second["run_id"]: 4}
    assert_direct(second)

    off = sweep(make_config, backend_name, grid(6), reuse="none")  # --reuse none
    assert off["ok"] and off["points_reused"] == 0 and off["points_computed"] == 24
    assert off["reuse"] is None

    from ttg_lib.commands.runs import runs

    shown = CliRunner(env={"COLUMNS": "400"}).invoke(
        runs, ["--output-dir", str(Path(first["record_dir"]).parents[1])])
    assert first["fingerprint"][4:16] in shown.output
    assert f"20 from {first['run_id']}" in shown.output


def test_a_changed_function_body_reuses_nothing(make_config, backend_name, broker_url,
                                                model):
    model()
    first = sweep(make_config, backend_name, grid(5))
    calls = model(tweak=" or {}")  # the same values, another body: another function
    second = sweep(make_config, backend_name, grid(6))
    assert second["ok"] and second["fingerprint"] != first["fingerprint"]
    assert (second["points_reused"], second["points_computed"]) == (0, 24)
    assert not second["reuse"]["sources"]
    assert {c for c in called(calls)} == {(0.001 * (i + 1), d) for i in range(6)
                                          for d in (2, 4, 6, 8)}


def test_a_tampered_reused_value_rejects_its_source_run_and_is_recomputed(
        make_config, backend_name, broker_url, model):
    model()
    first = sweep(make_config, backend_name, grid(5))
    table_path = Path(first["record_dir"]) / "results.parquet"
    table = pq.read_table(table_path)
    loss = table.column("value.loss")
    tampered = pc.if_else(pc.equal(table.column("param_id"), 0), pa.scalar(42.0), loss)
    pq.write_table(table.set_column(table.schema.get_field_index("value.loss"), "value.loss",
                                    tampered), table_path)  # point 0: always in the sample
    model()
    lines: list[str] = []
    second = sweep(make_config, backend_name, grid(6), lines)
    assert second["ok"], second["problems"]
    assert second["points_reused"] == 0 and second["points_computed"] == 24
    assert list(second["reuse"]["rejected"]) == [first["run_id"]]
    said = [line for line in lines if "rejected" in line]
    assert said and first["run_id"] in said[0] and "computed again" in said[0]
    df = load_results(second["record_dir"])
    assert len(df) == 24 and set(df["source_run"]) == {second["run_id"]}
    assert_direct(second)


def test_more_random_samples_with_the_same_seed_compute_only_the_added_ones(
        make_config, backend_name, broker_url):
    space = {"mode": "random", "samples": 500, "seed": 3,
             "axes": {"lr": {"loguniform": [1e-4, 1e-1]}, "depth": [2, 4, 6, 8]}}
    options = {"compute": "ttg_lib.examples:train", "chunk_size": 50, "workers": 2}
    first = execute(make_config(backend=backend_name, space=space, **options))
    second = execute(make_config(backend=backend_name, space={**space, "samples": 1000},
                                 **options))
    assert first["ok"] and second["ok"], second["problems"]
    assert (second["points_reused"], second["points_computed"]) == (500, 500)
    df = load_results(second["record_dir"]).sort_values("param_id")
    assert len(df) == 1000
    assert (df["source_run"].iloc[:500] == first["run_id"]).all()
    assert (df["source_run"].iloc[500:] == second["run_id"]).all()
    before = load_results(first["record_dir"]).sort_values("param_id")
    assert df["lr"].iloc[:500].tolist() == before["lr"].tolist()  # the first 500 unchanged
    assert json.loads(Path(second["record_dir"], "config.json").read_text())[
        "fingerprint"] == second["fingerprint"]

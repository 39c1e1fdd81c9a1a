"""`ttg run --dry-run` on the local cluster (issue 22, item 6): the point count, the chunk
count and the first points, and nothing started; a bad space or function is the same clear
error the run would give. In process (click's runner), no broker."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ttg_lib.cli import main

SPACE = {"axes": {"depth": {"range": [2, 10]}, "lr": [0.1, 0.01]},
         "derived": {"seed": "depth % 3"}, "where": "depth != 4"}


def dry_run(*args: str, tmp_path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", "--dry-run", "--output-dir", str(tmp_path),
                                       *args])
    return result.exit_code, result.output


def test_a_local_dry_run_prints_points_chunks_and_the_first_points(tmp_path):
    code, out = dry_run("--space", json.dumps(SPACE), "--compute", "ttg_lib.examples:train",
                        "--chunk-size", "4", tmp_path=tmp_path)
    assert code == 0, out
    assert "14 points in 4 chunks of 4" in out and "nothing started" in out
    assert "grid over depth × lr × seed where depth != 4" in out
    assert "  0: depth=2, lr=0.1, seed=2" in out and "  2: depth=3, lr=0.1, seed=0" in out
    assert not (tmp_path / "runs").exists()  # no record: nothing ran


def test_the_json_dry_run_has_the_same_figures(tmp_path):
    code, out = dry_run("--space", json.dumps(SPACE), "--compute", "ttg_lib.examples:train",
                        "--chunk-size", "4", "--json", tmp_path=tmp_path)
    plan = json.loads(out)
    assert code == 0 and plan["points"] == 14 and plan["chunks"] == 4
    assert plan["first_points"][:2] == [{"depth": 2, "lr": 0.1, "seed": 2},
                                        {"depth": 2, "lr": 0.01, "seed": 2}]
    code, out = dry_run("--json", "--total-params", "30", "--chunk-size", "10",
                        tmp_path=tmp_path)
    plan = json.loads(out)
    assert code == 0 and (plan["points"], plan["chunks"]) == (30, 3)
    assert plan["first_points"][0] == {"param_id": 0}


def test_a_dry_run_refuses_what_the_run_would_refuse(tmp_path):
    code, out = dry_run("--space", json.dumps({**SPACE, "where": "depth <"}),
                        "--compute", "ttg_lib.examples:train", tmp_path=tmp_path)
    assert code == 2 and "invalid where='depth <'" in out and "Traceback" not in out
    code, out = dry_run("--space", json.dumps(SPACE), "--compute", "ttg_lib.examples:fragile",
                        tmp_path=tmp_path)
    assert code == 2 and "does not take axis 'depth'" in out

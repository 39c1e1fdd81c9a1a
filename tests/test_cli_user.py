"""The `ttg` command line as a user runs it: exit codes, `ttg runs`, `ttg monitor`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ttg_in_process
from rich.console import Console
from test_contract import task

from ttg_lib.monitor import watch


def ttg(*args: str, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ttg_lib.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _run(tmp_path: Path, backend: str, **settings) -> subprocess.CompletedProcess:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"backend": backend, "scale": "tiny", "workers": 2,
                                  "total_params": 60, "chunk_size": 5, "work_ms": 1.0,
                                  **settings}))
    return ttg("run", "--config", str(config), "--output-dir", str(tmp_path / "out"),
               "--monitor", "none", "--json")


def test_a_verified_run_exits_0_and_a_failed_one_exits_1(tmp_path, backend_name, broker_url):
    good = _run(tmp_path, backend_name)
    assert good.returncode == 0, good.stderr[-2000:]
    summary = json.loads(good.stdout)
    assert summary["ok"] and summary["params_verified"] == 60

    # param 13 always raises: a failed point (its chunk mates computed), so the run fails
    bad = _run(tmp_path, backend_name, compute="ttg_lib.compute:failing", max_retries=0)
    assert bad.returncode == 1, bad.stderr[-2000:]
    failed = json.loads(bad.stdout)
    assert not failed["ok"] and failed["chunks_failed"] == 0 and failed["lost_params"] == 0
    assert failed["failed_points"]["count"] == 1
    assert "Traceback" not in bad.stderr

    listed = ttg("runs", "--output-dir", str(tmp_path / "out"), "--json")
    assert listed.returncode == 0, listed.stderr
    runs = {s["run_id"]: s["ok"] for s in json.loads(listed.stdout)}
    assert runs == {summary["run_id"]: True, failed["run_id"]: False}
    table = ttg("runs", "--output-dir", str(tmp_path / "out"), env={"COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines()
            if summary["run_id"] in line or failed["run_id"] in line}
    assert "ok" in rows[summary["run_id"]] and "FAILED" in rows[failed["run_id"]]
    assert f"{summary['efficiency']:.1%}" in rows[summary["run_id"]]


def test_the_human_summary_says_failed_with_the_reason(tmp_path, backend_name, broker_url):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"backend": backend_name, "scale": "tiny", "workers": 2,
                                  "total_params": 60, "chunk_size": 5, "work_ms": 1.0,
                                  "compute": "ttg_lib.compute:failing", "max_retries": 0}))
    result = ttg("run", "--config", str(config), "--output-dir", str(tmp_path / "out"),
                 "--monitor", "none", env={"COLUMNS": "200"})
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "1 point failed (first: RuntimeError: param 13 is " \
        "configured to fail)" in " ".join(result.stdout.split())
    # The "next:" line's export works as printed: every point, the failed one included.
    (hint,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    export = hint.removeprefix("next: ttg ").split("  ·  ")[0].split()
    exported = ttg(*export, "--out", str(tmp_path / "r.csv"))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "r.csv").read_text().count("\n") == 61


def test_no_runs_yet_is_an_empty_list(tmp_path):
    listed = ttg_in_process("runs", "--output-dir", str(tmp_path), "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_monitor_once_reports_the_queues(backend):
    backend.publish_tasks(task(i) for i in range(3))
    once = ttg("monitor", "--backend", backend.name, "--once", "--json", timeout=60)
    assert once.returncode == 0, once.stderr
    snap = json.loads(once.stdout)
    assert snap["backend"] == backend.name
    tasks = snap["queues"]["tasks"]
    # ready is always known; the total only where the broker can count it (never a guess)
    assert tasks["ready"] == 3 and tasks["messages"] in (3, None)
    assert tasks["name"] == backend.queue_names.tasks
    assert {role: q["ready"] for role, q in snap["queues"].items()
            if role != "tasks"} == {"retry": 0, "dlq": 0, "results": 0}
    table = ttg("monitor", "--backend", backend.name, "--once", env={"COLUMNS": "200"},
                timeout=60)
    assert table.returncode == 0, table.stderr
    (tasks_row,) = [line for line in table.stdout.splitlines()
                    if f" {backend.queue_names.tasks} " in line]
    assert tasks_row.split("│")[4].strip() == "3"  # messages_ready


def test_monitor_watch_refreshes_from_the_broker(backend):
    backend.publish_tasks(task(i) for i in range(2))
    reads = []
    real_stats = backend.stats
    backend.stats = lambda: reads.append(1) or real_stats()
    out = io.StringIO()
    watch(backend, 0.01, console=Console(file=out, width=200), iterations=3)
    text = out.getvalue()
    assert len(reads) == 3  # one broker read per refresh
    assert f"TTG queues on {backend.name}" in text
    assert any(f" {backend.queue_names.tasks} " in line and line.split("│")[4].strip() == "2"
               for line in text.splitlines())  # messages_ready


def test_monitor_without_a_broker_is_one_clear_error(backend_name):
    dead = {"redis": "redis://127.0.0.1:1/0", "rabbitmq": "amqp://guest:guest@127.0.0.1:1/"}
    result = ttg_in_process("monitor", "--backend", backend_name, "--once",
                            env={"TTG_REDIS_URL": dead["redis"],
                                 "TTG_RABBITMQ_URL": dead["rabbitmq"]})
    assert result.returncode == 2
    assert result.stderr.startswith("ttg: error:") and "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr

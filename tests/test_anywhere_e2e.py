"""Issue 20 end to end, on both brokers: `ttg run` from a project directory, a script's
`__main__` function swept through the Python API, and workers that join from another
directory (no access to the function's source) while a worker pinned to an earlier run
leaves the new run's tasks alone. Every process is started through the `ttg` console script
(not `python -m`, which would put the working directory on sys.path by itself); the only
environment variable they get is PYTHONPATH for this checkout's ttg_lib."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
TTG = str(Path(sys.executable).parent / "ttg")
MODEL = textwrap.dedent("""\
    import math

    def simulate(alpha, beta):
        return {"y": math.sin(alpha) * beta, "n": int(beta * 10)}
    """)
SPACE = "axes:\n  alpha: {linspace: [0, 1, 11]}\n  beta: [1, 2, 3]\n"


def expected() -> list[dict]:
    return [{"y": math.sin(a) * b, "n": int(b * 10)}
            for a in np.linspace(0, 1, 11).tolist() for b in (1, 2, 3)]


def bare_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": str(ROOT)}


@pytest.fixture
def project(tmp_path: Path, backend_name: str, broker_url: str) -> Path:
    """A user's project: mymodel.py, sweep.yaml and run.json (the broker to use)."""
    proj = tmp_path / "myproject"
    proj.mkdir()
    (proj / "mymodel.py").write_text(MODEL)
    (proj / "sweep.yaml").write_text(SPACE)
    (proj / "run.json").write_text(json.dumps({"backend": backend_name,
                                               "broker_url": broker_url}))
    return proj


def ttg_run(project: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [TTG, "run", "--config", "run.json", "--space", "sweep.yaml", "--compute",
         "mymodel:simulate", "--output-dir", str(project / "outputs"), "--monitor", "none",
         "--json", *args], cwd=project, env=bare_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, **popen)


def summary_of(proc: subprocess.Popen, timeout: float = 180) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    assert out.strip(), f"no summary (exit {proc.returncode}): {err[-3000:]}"
    return json.loads(out), err


def read_until(proc: subprocess.Popen, text: str) -> str:
    """stderr lines until one holds ``text`` (the run's progress line)."""
    seen = ""
    for line in proc.stderr:  # type: ignore[union-attr]
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"the run ended without saying {text!r}: {seen[-3000:]}")


def values(summary: dict) -> list[dict]:
    table = pq.read_table(Path(summary["results_file"])).sort_by("param_id").to_pylist()
    return [{"y": row["value.y"], "n": row["value.n"]} for row in table]


def test_ttg_run_imports_the_model_from_the_directory_it_was_started_in(project):
    summary, err = summary_of(ttg_run(project, "--workers", "2"))
    assert summary["ok"] and summary["params_verified"] == 33, err[-2000:]
    assert values(summary) == expected()
    config = json.loads((Path(summary["record_dir"]) / "config.json").read_text())
    assert len(config["compute_sha256"]) == 64  # not installed: shipped by value


SCRIPT = textwrap.dedent("""\
    import sys
    import numpy as np
    import ttg_lib
    from ttg_lib.errors import ConfigError

    backend, url, out = sys.argv[1:4]
    options = dict(backend=backend, broker_url=url, workers=2, output_dir=out)

    def f(alpha, beta):
        return alpha * beta + 1

    space = {"axes": {"alpha": {"linspace": [0, 1, 5]}, "beta": [1, 2, 3]}}
    sweep = ttg_lib.sweep(f, space, **options)
    df = sweep.results()
    assert sweep.summary.ok, sweep.summary.problems
    assert list(df["value"]) == [f(a, b) for a in np.linspace(0, 1, 5) for b in (1, 2, 3)]

    table = np.arange(10.0) ** 2
    def closure_over(t):
        return lambda i, k: float(t[i] * k)
    sweep = ttg_lib.sweep(closure_over(table), {"axes": {"i": list(range(10)), "k": [1, 2]}},
                          verify="full", **options)
    assert sweep.summary.ok and sweep.summary.verify_mode == "full"
    assert list(sweep.results()["value"]) == [table[i] * k for i in range(10) for k in (1, 2)]

    def picky(i):  # in __main__: repro reads it back from the run's record
        if i == 3:
            raise ValueError("three")
        return i
    sweep = ttg_lib.sweep(picky, {"axes": {"i": list(range(6))}}, max_retries=0, **options)
    from click.testing import CliRunner
    from ttg_lib.cli import main
    shown = CliRunner().invoke(main, ["repro", str(sweep.summary.record_dir), "3"])
    assert shown.exit_code == 1 and "ValueError: three" in shown.stderr, shown.output

    big = np.ones(100 << 17)
    try:
        ttg_lib.sweep(lambda i: float(big[i]), {"axes": {"i": [0, 1]}}, **options)
    except ConfigError as exc:
        print("CLEAR ERROR:", exc)
    print("ALL GOOD")
    """)


def test_a_scripts_main_function_is_swept_through_the_api(tmp_path, backend_name, broker_url):
    script = tmp_path / "sweep_it.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), backend_name, broker_url,
                           str(tmp_path / "outputs")], cwd=tmp_path, env=bare_env(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "ALL GOOD" in done.stdout, done.stderr[-3000:]
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("CLEAR ERROR")]
    assert "64 MiB" in line and "100 MiB" in line
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 3  # the error started none


def test_workers_from_another_directory_join_and_a_pinned_one_leaves_the_next_run(
        project, tmp_path, backend_name, broker_url):
    elsewhere = tmp_path / "another-host"
    elsewhere.mkdir()  # no mymodel.py here: the function comes by value through the broker
    started: list[subprocess.Popen] = []

    def worker(name: str, *args: str) -> subprocess.Popen:
        log = (elsewhere / f"{name}.log").open("w")
        proc = subprocess.Popen([TTG, "worker", "--backend", backend_name, "--url", broker_url,
                                 "--name", name, *args], cwd=elsewhere, env=bare_env(),
                                stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    try:
        run1 = ttg_run(project, "--workers", "0", "--expect-workers", "2")
        waited = read_until(run1, "waiting for workers: 0 of 2 joined")
        assert "ttg worker --backend" in waited  # the line says how to join
        worker("host-a")
        b = worker("host-b")
        summary, err = summary_of(run1)
        assert summary["ok"] and summary["params_verified"] == 33, err[-3000:]
        assert "2 worker(s) joined" in err
        assert values(summary) == expected()
        workers = set(pq.read_table(summary["results_file"]).column("worker").to_pylist())
        assert workers <= {"host-a", "host-b"}

        b.send_signal(signal.SIGTERM)  # host-a stays, and goes on to the next run
        assert b.wait(30) == 0
        stale = worker("stale", "--run-id", summary["run_id"])
        run2 = ttg_run(project, "--workers", "0", "--expect-workers", "2", "--work-ms", "30",
                       "--chunk-size", "1", "--reuse", "none")  # computed again, not reused
        summary2, err2 = summary_of(run2)
        assert summary2["ok"] and summary2["params_verified"] == 33, err2[-3000:]
        assert summary2["dlq_count"] == 0
        assert stale.wait(30) == 0  # it saw the new run's task, left it, and stopped
        log = (elsewhere / "stale.log").read_text()
        assert '"run_over"' in log and "dead_lettered" not in log
        workers2 = set(pq.read_table(summary2["results_file"]).column("worker").to_pylist())
        assert workers2 == {"host-a"}
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in started:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_the_by_value_benchmark_runs_and_writes_its_table(tmp_path):
    """A smoke (--quick, one broker per side of the comparison): no figure is asserted."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "byvalue.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "byvalue.json").read_text())
    assert [row["backend"] for row in result["rows"]] == ["redis", "rabbitmq"]
    for row in result["rows"]:
        assert row["path_params_s"] > 0 and row["value_params_s"] > 0
        (value_run,) = row["runs"]["value"]
        config = json.loads((Path(value_run["record_dir"]) / "config.json").read_text())
        assert config["compute"] == "__main__:by_value" and config["compute_sha256"]


def test_a_background_sweep_shows_progress_stops_and_resumes_without_its_source(
        tmp_path, backend_name, broker_url):
    import ttg_lib

    def slow_double(i: int) -> int:
        time.sleep(0.02)
        return i * 2

    sweep = ttg_lib.sweep(slow_double, {"axes": {"i": {"range": [0, 200]}}},
                          backend=backend_name, broker_url=broker_url, workers=2, chunk_size=5,
                          output_dir=str(tmp_path), background=True, live=False)
    deadline = time.monotonic() + 60
    while sweep.progress().chunks_completed < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the run goes on its own thread; progress() is the thing to poll
    stopped = sweep.stop()
    assert stopped is not None and stopped.state == "stopped" and not stopped.ok
    assert sweep.done and stopped.chunks_completed < 40
    resumed = ttg_lib.resume(sweep.run_id, output_dir=tmp_path, live=False)  # from its record
    assert resumed.summary.ok and resumed.summary.resumed
    assert resumed.results()["value"].tolist() == [i * 2 for i in range(200)]


def test_the_supervisor_panel_sweeps_a_function_of_the_notebook(tmp_path, backend_name,
                                                                 broker_url):
    """The panel's Start, driven on an asyncio loop as the kernel would, with a function."""
    pytest.importorskip("ipywidgets")
    import asyncio

    from ttg_lib.notebook.panel import SupervisorPanel

    def square(x: int) -> int:
        return x * x

    async def start_and_wait() -> dict:
        panel = SupervisorPanel(output_dir=str(tmp_path), scale="tiny", function=square,
                                space={"axes": {"x": {"range": [0, 12]}}})
        panel.backend.value = backend_name
        panel.workers.value = 2
        task = panel.start()
        assert task is not None, panel.status.value
        await task
        return panel.summary or {}

    summary = asyncio.run(start_and_wait())
    assert summary.get("ok"), summary
    assert summary["compute"].endswith(".square") and summary["params_verified"] == 12
    config = json.loads((Path(summary["record_dir"]) / "config.json").read_text())
    assert config["compute_sha256"]


@pytest.mark.slow
def test_the_supervisor_panel_kills_and_stops_a_run_between_steps(tmp_path, backend_name,
                                                                 broker_url):
    """Kill and Stop clicked while execute() steps the run on its thread: both are carried
    out between steps, the kill is recorded and the run ends stopped, its record written."""
    pytest.importorskip("ipywidgets")
    import asyncio

    from ttg_lib.notebook.panel import SupervisorPanel

    def slow_square(x: int) -> int:
        time.sleep(0.02)
        return x * x

    async def until(condition, what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    async def click_through() -> SupervisorPanel:
        panel = SupervisorPanel(output_dir=str(tmp_path), scale="tiny", function=slow_square,
                                space={"axes": {"x": {"range": [0, 2000]}}})
        panel.backend.value, panel.workers.value, panel.fault.value = backend_name, 2, False
        task = panel.start()
        assert task is not None, panel.status.value
        await until(lambda: not panel.kill_btn.disabled
                    and panel.run.progress().chunks_completed >= 2, "the run never got going")
        await until(lambda: panel.landscape.points > 0, "the Results chart never filled in")
        panel.kill()
        await until(lambda: "killed" in panel.log.value, "the kill was never carried out")
        panel.stop()
        await task
        return panel

    panel = asyncio.run(click_through())
    summary = panel.summary or {}
    assert summary.get("state") == "stopped", (summary, panel.log.value)
    assert summary["chunks_completed"] < summary["chunks_total"]
    assert "workers ready" in panel.log.value and "VERIFIED" not in panel.log.value
    assert (Path(summary["record_dir"]) / "summary.json").exists()
    assert "<td>w1</td>" in panel.workers_html.value  # the heartbeats, read back typed

"""The command line: every subcommand is click, the `python -m` entry points run the same
commands with the same flags and exit codes (0 ok, 1 check failed, 2 usage or TTGError)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import REDIS_URL, _require

from ttg_lib.cli import main
from ttg_lib.commands.base import command
from ttg_lib.errors import ClusterError, TTGError
from ttg_lib.worker import WorkerSettings


def module(name: str, *args: str, env: dict[str, str] | None = None,
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", name, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def write_beat(path: Path, age_s: float, state: str = "idle") -> Path:
    path.write_text(json.dumps({"last_heartbeat": time.time() - age_s, "state": state}))
    return path


# -- health: the Kubernetes probes' command line -----------------------------------------
def test_health_probe_flags_and_exit_codes(tmp_path: Path):
    fresh = write_beat(tmp_path / "fresh.json", 1)
    stale = write_beat(tmp_path / "stale.json", 30)
    ok = module("ttg_lib.health", "--file", str(fresh), "--max-age", "15")
    assert ok.returncode == 0 and ok.stdout.startswith("ok: idle")
    old = module("ttg_lib.health", "--file", str(stale), "--max-age", "15")
    assert old.returncode == 1 and "old (limit 15s)" in old.stderr
    missing = module("ttg_lib.health", "--file", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "no heartbeat file" in missing.stderr
    usage = module("ttg_lib.health", "--max-age", "soon")
    assert usage.returncode == 2 and "--max-age" in usage.stderr


def test_ttg_health_is_the_same_command(tmp_path: Path):
    starting = write_beat(tmp_path / "beat.json", 0, state="starting")
    result = CliRunner().invoke(main, ["health", "--file", str(starting), "--max-age", "5"])
    assert result.exit_code == 1 and "worker state is starting" in result.output


def test_health_probe_imports_no_broker_client():
    """A probe runs every few seconds in every pod: it must not pay for the run machinery."""
    probe = ("import sys; import ttg_lib.commands.health; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'rich', 'redis', 'pika', 'plotly', 'kubernetes'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- worker ------------------------------------------------------------------------------
def test_worker_exposes_every_setting():
    """Every WorkerSettings field has a flag (exit_with_parent is the local cluster's env)."""
    flags = {p.name for p in main.commands["worker"].params}
    fields = {f.name for f in dataclasses.fields(WorkerSettings)} - {"exit_with_parent"}
    assert fields <= flags, f"no flag for {sorted(fields - flags)}"


@pytest.mark.parametrize("args,env", [(["--backend", "nats"], {}), ([], {"TTG_BACKEND": "nats"})])
def test_worker_backend_checked_once_from_flag_or_env(args: list[str], env: dict[str, str]):
    proc = module("ttg_lib.worker", *args, env=env)
    assert proc.returncode == 2
    assert "'--backend' (or TTG_BACKEND): 'nats' is not one of 'redis', 'rabbitmq'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_rejects_a_lease_of_zero():
    proc = module("ttg_lib.worker", "--backend", "redis", "--lease-s", "0")
    assert proc.returncode == 2 and "--lease-s" in proc.stderr


@pytest.mark.slow  # a real Redis
def test_worker_flags_reach_the_worker(tmp_path: Path):
    """--idle-exit-s, --name and --heartbeat-file through `python -m ttg_lib.worker`, on the
    real Redis: the worker connects, idles, exits 0 and leaves its final heartbeat."""
    _require(REDIS_URL)
    beat = tmp_path / "w.json"
    proc = module("ttg_lib.worker", "--backend", "redis", "--url", REDIS_URL, "--run-id",
                  "cli-test", "--name", "cli-worker", "--lease-s", "1.5", "--heartbeat-file",
                  str(beat), "--idle-exit-s", "0.3", "--max-chunks", "1", timeout=60)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(beat.read_text())
    assert (state["name"], state["state"], state["chunks_done"]) == ("cli-worker", "stopped", 0)
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["worker_ready", "worker_stopped"]
    assert {e["worker"] for e in events} == {"cli-worker"}


# -- kind --------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["bogus"], ["status", "--backend", "nats"]])
def test_kind_usage_errors_exit_2(args: list[str]):
    proc = module("ttg_lib.cluster.kind", *args)
    assert proc.returncode == 2 and "Invalid value" in proc.stderr


def test_kind_cluster_error_is_one_message_and_exit_2(monkeypatch: pytest.MonkeyPatch):
    seen = {}

    def provision(action: str, backend: str, build: bool, force: bool) -> list[str]:
        seen.update(action=action, backend=backend, build=build, force=force)
        raise ClusterError("kind is not installed")

    monkeypatch.setattr("ttg_lib.commands.kind.provision", provision)
    result = CliRunner().invoke(main, ["kind", "up", "--backend", "both", "--no-build"])
    assert result.exit_code == 2
    assert result.output.strip() == "ttg: error: kind is not installed"
    assert seen == {"action": "up", "backend": "both", "build": False, "force": False}


def test_kind_defaults_to_status(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("ttg_lib.commands.kind.provision",
                        lambda action, backend, build, force: [f"{action} {backend} {build}"])
    result = CliRunner().invoke(main, ["kind"])
    assert result.exit_code == 0 and result.output == "status redis True\n"


# -- the error policy --------------------------------------------------------------------
def test_a_ttg_error_is_one_line_and_a_bug_keeps_its_traceback():
    @command("boom")
    @click.option("--bug", is_flag=True)
    def boom(bug: bool) -> None:
        if bug:
            raise KeyError("a bug")
        raise TTGError("the user's to fix")

    result = CliRunner().invoke(boom, [])
    assert (result.exit_code, result.output) == (2, "ttg: error: the user's to fix\n")
    result = CliRunner().invoke(boom, ["--bug"])
    assert isinstance(result.exception, KeyError)


def test_every_subcommand_is_click():
    assert set(main.commands) == {"run", "worker", "monitor", "cleanup", "runs", "results",
                                  "report", "repro", "health", "kind"}
    for name, cmd in main.commands.items():
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and cmd.get_short_help_str(), name

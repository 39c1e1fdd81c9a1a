"""Disk full, permission denied, a read-only output directory (issue 19, finding 13): one
line naming the path, never a traceback; a flush the disk refuses is tried again, and
nothing is settled in the broker that is not on disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_unit import drive, memory_run

from ttg_lib import load_results
from ttg_lib.errors import DiskError
from ttg_lib.results import ResultsWriter

ROOT = Path(__file__).resolve().parents[1]


def _full(path: str) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path)


def test_a_full_disk_mid_run_is_said_once_and_ridden_out(tmp_path, monkeypatch):
    real = ResultsWriter.flush
    refusals = {"left": 4}

    def flaky(self):
        if self.pending and refusals["left"]:
            refusals["left"] -= 1
            raise _full(str(self.parts))
        return real(self)

    monkeypatch.setattr(ResultsWriter, "flush", flaky)
    said: list[str] = []
    run = memory_run(tmp_path, work_ms=10.0)
    run.say = said.append
    summary = drive(run)
    assert summary["ok"] and refusals["left"] == 0
    assert load_results(summary["record_dir"])["param_id"].tolist() == list(range(60))
    lines = [line for line in said if "disk is full" in line]
    assert len(lines) == 1 and "results.parts" in lines[0], said


def test_a_final_flush_refused_for_good_is_one_line_naming_the_path(tmp_path, monkeypatch):
    def full(self):
        if self.pending:
            raise _full(str(self.parts / "part-000000.parquet"))
        return []

    monkeypatch.setattr(ResultsWriter, "flush", full)
    monkeypatch.setattr("ttg_lib.ledger.CLOSE_RETRY_S", 0.01)
    run = memory_run(tmp_path)
    run.say = lambda line: None
    with pytest.raises(DiskError) as caught:
        drive_until_done(run)
    message = str(caught.value)
    assert message.startswith("cannot write ") and "results.parts" in message
    assert message.endswith("the disk is full") and "\n" not in message


def drive_until_done(run):
    with run:
        run.start()
        while not run.done and run.elapsed_s < 1:
            run.step(0.02)
        return run.finish()


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write to: a read-only tmpfs as root (root ignores modes),
    the mode bits otherwise."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                              str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"root without a way to make a read-only directory: {mounted.stderr}")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_read_only_output_dir_is_one_line_naming_it(read_only_dir):
    proc = subprocess.run([sys.executable, "-m", "ttg_lib.cli", "run", "--scale", "tiny",
                           "--output-dir", str(read_only_dir), "--monitor", "none"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert str(read_only_dir) in proc.stderr
    assert "read-only" in proc.stderr or "permission denied" in proc.stderr

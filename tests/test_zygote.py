"""The zygote (ttg_lib/zygote.py): compute processes forked on request, how each ended
reported as before, killed only while its own, none left behind when the worker dies."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttg_lib.childproc import ChildDied, ComputeChild, may_fork
from ttg_lib.messages import Task
from ttg_lib.supervise import Supervisor
from ttg_lib.zygote import Zygote

ROOT = Path(__file__).resolve().parent.parent


def task(compute: str, count: int, **kw) -> Task:
    return Task(run_id="z", chunk_id=0, start=0, count=count, work_ms=0, compute=compute,
                space={"axes": {"x": {"range": [0, 8]}}}, **kw)


def gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie of someone else's)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "exec"])
def test_a_compute_process_of_the_zygote_says_how_it_ended(fork):
    if fork and not may_fork():  # a test process with threads: a fresh one forks the zygote
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "import test_zygote; test_zygote.says_how_it_ended(fork=True)",
             str(ROOT / "tests")], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return
    says_how_it_ended(fork)


def says_how_it_ended(fork: bool) -> None:
    """Killed, segfaulted, stopped: each said as before, through a zygote forked or exec'd."""
    assert not fork or may_fork(), "this process may no longer fork"
    zygote = Zygote(fork=fork)
    try:
        child = ComputeChild(zygote)
        assert child.wait_ready(30) and os.getppid() != child.pid
        with open(f"/proc/{child.pid}/stat") as stat:  # its parent: the zygote
            assert stat.read().rsplit(")", 1)[1].split()[1] == str(zygote.proc.pid)
        assert child.rss_mib() > 0
        assert child.kill() == "signal 9 (SIGKILL)"
        segfaults = ComputeChild(zygote)
        assert segfaults.wait_ready(30)
        os.kill(segfaults.pid, signal.SIGSEGV)
        with pytest.raises(ChildDied, match=r"signal 11 \(SIGSEGV\)"):
            while True:
                segfaults.receive(1.0)
        stops = ComputeChild(zygote)
        assert stops.wait_ready(30)
        stops.stop()
        assert stops.proc.returncode == 0
    finally:
        zygote.close()
    assert zygote.proc.returncode == 0


def test_the_zygote_kills_only_a_process_it_forked_and_has_not_reaped():
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zygote = Zygote(fork=False)
    try:
        child = ComputeChild(zygote)
        assert child.wait_ready(30)
        zygote.kill(other.pid)  # not its child: refused
        child.stop()
        zygote.kill(child.pid)  # reaped already: its pid may be anyone's now
        assert other.poll() is None
        assert ComputeChild(zygote).wait_ready(30)  # the zygote still serves
    finally:
        zygote.close()
        other.kill()
        other.wait()


WORKER = """
import sys, time
from ttg_lib.zygote import Zygote
from ttg_lib.childproc import ComputeChild
zygote = Zygote(fork=sys.argv[1] == "fork")
child = ComputeChild(zygote)
assert child.wait_ready(30)
print(zygote.proc.pid, child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["fork", "exec"])
def test_the_zygote_and_its_compute_processes_die_with_a_killed_worker(mode):
    worker = subprocess.Popen([sys.executable, "-c", WORKER, mode], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        zygote, child = map(int, worker.stdout.readline().split())
        assert not gone(zygote) and not gone(child)
    finally:
        worker.kill()
        worker.wait()
    assert until(lambda: gone(zygote) and gone(child))


def test_a_new_compute_process_imports_the_users_module_afresh(tmp_path, monkeypatch):
    module = tmp_path / "edited.py"
    module.write_text("def fn(x):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path),
                                                      os.environ.get("PYTHONPATH", "")]))
    supervisor = Supervisor()
    try:
        (first,) = supervisor.run([task("edited:fn", count=2, recycle_after=1)],
                                  keepalive=lambda: None)
        module.write_text("def fn(x):\n    return 22.0\n")  # another size: no stale .pyc
        (second,) = supervisor.run([task("edited:fn", count=2, recycle_after=1)],
                                   keepalive=lambda: None)
        assert supervisor.counters.recycled == 1
        assert struct.unpack("2d", first.values.raw) == (1.0, 1.0)
        assert struct.unpack("2d", second.values.raw) == (22.0, 22.0)
    finally:
        supervisor.close()


def test_a_lost_zygote_is_replaced_and_the_batch_still_computed():
    supervisor = Supervisor()
    try:
        supervisor.start()
        supervisor.ready()
        lost = supervisor.zygote
        assert lost is not None
        os.kill(lost.proc.pid, signal.SIGKILL)  # ours: the OOM killer's choice, say
        (outcome,) = supervisor.run([task("ttg_lib.misbehave:raises_at_13", count=4)],
                                    keepalive=lambda: None)
        assert outcome.failures == [] and outcome.values.count == 4
        assert supervisor.zygote is not lost and supervisor.zygote.alive
    finally:
        supervisor.close()

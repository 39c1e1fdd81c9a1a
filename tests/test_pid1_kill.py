"""The pod hard kill as a container sees it: the worker is PID 1 of its PID namespace.

The kernel drops a signal a namespace's init sends itself unless init handles it, and SIGKILL
cannot be handled, so a self-SIGKILL is a no-op there (pid_namespaces(7)). With
TTG_KILL_ON_SIGTERM=1 the worker must still end at the kubelet's SIGTERM, mid-chunk, with
nothing acked: ttg_lib.cluster.hardkill does it with os._exit(137). These tests run the worker
as PID 1 with ``unshare --pid --fork`` (root, as in CI); on today's kernels they fail with
the old ``os.kill(os.getpid(), SIGKILL)``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polling import wait_for

from ttg_lib.backends import open_consumer
from ttg_lib.messages import Task

RUN = "pid1-kill"


def pid_namespaces_available() -> str | None:
    """None when ``unshare --pid --fork`` works here, else why not (the skip reason)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c",
                               "import os; print(os.getpid())"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "unshare --pid --fork did not answer"
    if done.returncode != 0 or done.stdout.strip() != "1":
        return f"unshare --pid --fork is not allowed here (needs root): {done.stderr.strip()}"
    return None


NO_PID_NS = pid_namespaces_available()


def namespace_init(outer: subprocess.Popen, timeout: float = 10.0) -> int:
    """The host pid of the process ``unshare --fork`` started (PID 1 inside)."""
    children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.02)  # nothing to wait on: the fork is unshare's
    raise AssertionError("unshare did not fork its child")


def busy_heartbeat(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("current_chunk") == 0 else None


@pytest.mark.slow
@pytest.mark.skipif(NO_PID_NS is not None, reason=str(NO_PID_NS))
def test_worker_as_pid1_ends_at_sigterm_and_its_chunk_is_redelivered(
        backend, backend_name, broker_url, tmp_path):
    backend.publish_tasks([Task(run_id=RUN, chunk_id=0, start=0, count=1, work_ms=20_000,
                                compute="ttg_lib.compute:placeholder")])
    beat = tmp_path / "heartbeat.json"
    env = {**os.environ, "TTG_KILL_ON_SIGTERM": "1"}
    outer = subprocess.Popen(
        ["unshare", "--pid", "--fork", sys.executable, "-m", "ttg_lib.worker",
         "--backend", backend_name, "--url", broker_url, "--run-id", RUN, "--name", "pid1",
         "--lease-s", "0.6", "--heartbeat-file", str(beat)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        init = namespace_init(outer)
        state = wait_for(lambda: busy_heartbeat(beat), 30, "the worker to take chunk 0",
                         every=0.05)
        assert state["pid"] == 1  # the worker really is its namespace's init
        # The kubelet signals the container's init from outside its namespace.
        os.kill(init, signal.SIGTERM)
        sent = time.monotonic()
        try:
            code = outer.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pytest.fail("the worker, PID 1 of its namespace, was still running 1 s after "
                        "SIGTERM with TTG_KILL_ON_SIGTERM=1 (a self-SIGKILL is dropped there)")
        assert time.monotonic() - sent < 1.0
        assert code != 0, "a hard kill must not look like a clean stop"
    finally:
        if outer.poll() is None:
            os.killpg(outer.pid, signal.SIGKILL)
            outer.wait(5)
        outer.stderr.close()
    other = open_consumer(backend_name, broker_url, lease_s=0.6)
    other.connect()
    try:
        got = wait_for(lambda: other.fetch("survivor", timeout=0.5), 15,
                       "chunk 0 to be redelivered to another worker", every=0.05)
        assert [Task.decode(d.body).chunk_id for d in got] == [0]
    finally:
        other.close()

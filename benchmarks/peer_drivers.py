"""One driver per system for the peers benchmark: Dask, Ray and TTG on the same workloads.

A driver runs in a process of its own (started by ``benchmarks/peers.py``), so the peak
memory it reports is that system's driver alone, and no system's idle cluster runs while
another is measured. Every driver measures the same things: wall time from the first task
submitted to the last result in hand, throughput, and the driver's peak RSS while it ran.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.peer_work import PLACEHOLDER, WORKERS, Workload, chunk_task
from benchmarks.stamp import fresh_dir
from ttg_lib.compute import load, run_chunk

WARM_UP_MS = 200.0  # long enough that three warm-up chunks need three worker processes


class PeakRss:
    """The process's resident memory sampled every 10 ms while a workload runs: the
    workload's own peak (ru_maxrss would carry the earlier workloads' peaks)."""

    def __init__(self) -> None:
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> float:
        return round(self.peak / 2**20, 1)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def check(w: Workload, results: dict[int, list[Any]]) -> dict[str, Any]:
    """Every chunk present, every value equal to a direct recomputation in this process."""
    started = time.perf_counter()
    fn = load(w.compute)
    missing = wrong = 0
    for cid, start, count in w.ranges():
        values = results.get(cid)
        if values is None:
            missing += 1
            continue
        expected = run_chunk(fn, start, count, 0.0)
        wrong += sum(1 for a, b in zip(values, expected, strict=False) if a != b)
        wrong += abs(len(values) - len(expected))
    return {"checked": missing == 0 and wrong == 0, "missing_chunks": missing,
            "wrong_values": wrong, "check_s": round(time.perf_counter() - started, 3)}


# -- killing a worker mid-chunk (Dask and Ray) -------------------------------------------------

def _descends_from_me(pid: int) -> bool:
    """Only a process this driver started (directly or through the peer's own daemons) is
    ever killed: walk the parent chain up to this process."""
    me = os.getpid()
    for _ in range(16):
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def kill_mid_chunk(exec_log: Path, done: dict[int, Any]) -> dict[str, Any] | None:
    """SIGKILL the process that started the latest chunk not yet gathered (it is surely
    mid-chunk), as TTG's fault demo does; None when no such process is found yet."""
    lines = exec_log.read_text().split("\n") if exec_log.exists() else []
    for line in reversed([ln for ln in lines if ln]):
        chunk_id, pid = (int(x) for x in line.split())
        if chunk_id in done or not _descends_from_me(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        return {"pid": pid, "chunk": chunk_id, "chunks_done": len(done)}
    return None


def executions(exec_log: Path) -> int:
    return sum(1 for line in exec_log.read_text().split("\n") if line)


# -- the gather loop shared by Dask and Ray ----------------------------------------------------

class Peer:
    """What a peer system provides: start, submit a workload's chunks, hand back the chunks
    finished since the last call (blocking briefly), stop."""

    name = ""

    def __init__(self, packed: bool = False):
        self.packed = packed  # tasks return their values pickled, unpickled here (timed)

    def start(self) -> None:
        raise NotImplementedError

    def submit(self, w: Workload, exec_log: str | None) -> None:
        raise NotImplementedError

    def poll(self) -> list[tuple[int, Any]]:
        raise NotImplementedError

    def ready(self) -> None:
        """Wait until three workers are up and have run a chunk (again, after a kill), so
        that no worker start-up is billed to a workload."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def measure_peer(peer: Peer, w: Workload, scratch: Path) -> dict[str, Any]:
    """Submit every chunk, gather every result (killing one worker at ``kill_at``), check."""
    peer.ready()
    exec_log = scratch / f"{peer.name}-{w.name}.exec" if w.kill_at else None
    kill_due = math.ceil(w.kill_at * w.chunks) if w.kill_at else None
    results: dict[int, list[Any]] = {}
    killed: dict[str, Any] | None = None
    with PeakRss() as rss:
        t0 = time.perf_counter()
        peer.submit(w, str(exec_log) if exec_log else None)
        while len(results) < w.chunks:
            for cid, values in peer.poll():
                if cid not in results:
                    results[cid] = pickle.loads(values) if peer.packed else values
            if exec_log and killed is None and len(results) >= (kill_due or 0):
                killed = kill_mid_chunk(exec_log, results)
                if killed:
                    killed["at_s"] = round(time.perf_counter() - t0, 3)
        runtime = time.perf_counter() - t0
    row = _row(w, runtime, rss.mib)
    if exec_log:
        row["killed"] = killed
        row["chunks_rerun"] = executions(exec_log) - w.chunks
    row.update(check(w, results))
    return row


def _row(w: Workload, runtime: float, rss_mib: float) -> dict[str, Any]:
    ideal = w.ideal_s(WORKERS)
    return {"runtime_s": round(runtime, 3), "throughput_params_s": round(w.params / runtime, 1),
            "ideal_s": ideal, "efficiency": round(ideal / runtime, 4) if ideal else None,
            "driver_peak_rss_mib": rss_mib}


class DaskPeer(Peer):
    name = "dask"

    def start(self) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self.cluster)
        self.ready()

    def ready(self) -> None:
        self.client.wait_for_workers(WORKERS, timeout=120)
        warm = self.client.map(chunk_task, [PLACEHOLDER] * WORKERS, range(-WORKERS, 0),
                               [0] * WORKERS, [1] * WORKERS, [WARM_UP_MS] * WORKERS,
                               pure=False)
        self.client.gather(warm)

    def submit(self, w: Workload, exec_log: str | None) -> None:
        from dask.distributed import as_completed

        ranges = w.ranges()
        futures = self.client.map(
            chunk_task, [w.compute] * len(ranges), [r[0] for r in ranges],
            [r[1] for r in ranges], [r[2] for r in ranges], [w.work_ms] * len(ranges),
            [exec_log] * len(ranges), [self.packed] * len(ranges),
            key=[f"{w.name}-{r[0]}" for r in ranges])
        self._chunk = {f.key: r[0] for f, r in zip(futures, ranges, strict=True)}
        # Only as_completed holds the futures: a result in hand is released at once (the
        # scheduler may then forget it), the best case for Dask when a worker dies.
        self._pending = as_completed(futures, with_results=True)

    def poll(self) -> list[tuple[int, Any]]:
        batch = self._pending.next_batch(block=True)
        out = [(self._chunk[future.key], values) for future, values in batch]
        for future, _ in batch:
            future.release()
        return out

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


class RayPeer(Peer):
    name = "ray"

    def start(self) -> None:
        import ray

        self.ray = ray
        ray.init(num_cpus=WORKERS, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        self.task = ray.remote(chunk_task)  # max_retries=3 by default: a killed task reruns
        self.ready()

    def ready(self) -> None:
        """Ray starts worker processes on demand: three concurrent warm-up chunks make sure
        three are up (again, after a kill) before the clock starts."""
        self.ray.get([self.task.remote(PLACEHOLDER, -1, 0, 1, WARM_UP_MS)
                      for _ in range(WORKERS)])

    def submit(self, w: Workload, exec_log: str | None) -> None:
        refs = {self.task.remote(w.compute, cid, start, count, w.work_ms, exec_log,
                                 self.packed): cid
                for cid, start, count in w.ranges()}
        self._chunk = refs
        self._pending = list(refs)

    def poll(self) -> list[tuple[int, Any]]:
        ready, self._pending = self.ray.wait(self._pending, num_returns=len(self._pending),
                                            timeout=0.05)
        return [(self._chunk.pop(ref), values)
                for ref, values in zip(ready, self.ray.get(ready), strict=True)]

    def close(self) -> None:
        self.ray.shutdown()


PEERS: dict[str, type[Peer]] = {"dask": DaskPeer, "ray": RayPeer}


def run_peer(name: str, items: list[Workload], scratch: Path, say: Any = print,
             packed: bool = False) -> dict[str, Any]:
    peer = PEERS[name](packed)
    t0 = time.perf_counter()
    peer.start()
    out: dict[str, Any] = {"startup_s": round(time.perf_counter() - t0, 3), "packed": packed,
                           "workloads": {}}
    say(f"{name}: cluster and {WORKERS} workers ready in {out['startup_s']:.2f} s")
    try:
        for w in items:
            try:
                out["workloads"][w.name] = measure_peer(peer, w, scratch)
            except Exception as exc:  # one workload's failure is reported, the rest still run
                out["workloads"][w.name] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"{name} {w.name}: {out['workloads'][w.name]}")
    finally:
        peer.close()
    return out


# -- TTG ---------------------------------------------------------------------------------------

def run_ttg(backend: str, items: list[Workload], scratch: Path, settings: dict[str, str],
            say: Any = print, private_broker: bool = False) -> dict[str, Any]:
    """Each workload is one run through the library (``execute(RunConfig.build(...))``): it
    starts its own three workers; start-up is the time from the call to the first task.

    ``private_broker``: a broker started here for the benchmark, as Dask and Ray start their
    schedulers: it runs at the driver's priority (under ``nice``, as the peers' processes do)
    and shares no CPU with other users of the configured one."""
    from ttg_lib.cluster.brokers import start_private

    out: dict[str, Any] = {"startup_s": None, "broker": "configured", "workloads": {}}
    if not private_broker:
        _run_ttg(backend, items, scratch, settings, say, out)
        return out
    t0 = time.perf_counter()
    broker = start_private(backend)
    out.update(broker="private", broker_start_s=round(time.perf_counter() - t0, 3))
    say(f"ttg-{backend}: private {backend} ready in {out['broker_start_s']:.2f} s")
    try:
        _run_ttg(backend, items, scratch, {"broker_url": broker.url, **settings}, say, out)
    finally:
        broker.stop()
    return out


def _run_ttg(backend: str, items: list[Workload], scratch: Path, settings: dict[str, str],
             say: Any, out: dict[str, Any]) -> None:
    from ttg_lib.config import RunConfig
    from ttg_lib.run import execute
    from ttg_lib.summary import RunSummary

    for w in items:
        config = RunConfig.build(**ttg_settings(backend, w, scratch, settings))
        first: list[float] = []

        def on_progress(p: Any, first: list[float] = first) -> None:
            if not first:
                first.append(time.perf_counter() - p.elapsed_s)

        with PeakRss() as rss:
            called = time.perf_counter()
            summary = RunSummary.from_dict(execute(config, on_progress))
        # like the peers' "last result in hand, checked": every chunk and every recomputation
        # in, every result on disk (the run's complete_s), not only the last result read
        row = _row(w, summary.complete_s or float("nan"), rss.mib)
        row["runtime_s_last_result"] = summary.runtime_s
        row.update({
            "startup_s": round(first[0] - called, 3) if first else None,
            "wall_s": round(time.perf_counter() - called, 3),
            "verify_s": summary.verify_s, "checked": bool(summary.ok),
            "params_verified": summary.params_verified,
            "lost_params": summary.lost_params, "wrong_values": summary.wrong_results,
            "orchestrator_ru_maxrss_mib": summary.orchestrator_peak_rss_mib,
            "retry_count": summary.retry_count,
            "duplicate_deliveries": summary.duplicate_deliveries,
            "run_id": summary.run_id, "record_dir": summary.record_dir,
            "problems": summary.problems})
        if w.kill_at:
            row["killed"] = summary.fault.to_dict() if summary.fault else None
            row["chunks_rerun"] = _ttg_reruns(Path(summary.record_dir))
        out["workloads"][w.name] = row
        say(f"ttg-{backend} {w.name}: {row}")
    starts = [r["startup_s"] for r in out["workloads"].values() if r.get("startup_s")]
    out["startup_s"] = round(sorted(starts)[len(starts) // 2], 3) if starts else None


def ttg_settings(backend: str, w: Workload, scratch: Path,
                 settings: dict[str, str]) -> dict[str, Any]:
    """The RunConfig for one workload; ``settings`` (``--ttg-set key=value``) come last, so
    they can turn on options such as result files or verification modes."""
    scale = {"small": "small", "small-fault": "small", "medium": "medium"}.get(w.name, "large")
    return {"backend": backend, "scale": scale, "total_params": w.params,
            "chunk_size": w.chunk, "work_ms": w.work_ms, "workers": WORKERS,
            "compute": w.compute, "fault_demo": bool(w.kill_at), "kill_at": w.kill_at or 0.3,
            "monitor": "none", "output_dir": str(fresh_dir(scratch / "ttg")), **settings}


def _ttg_reruns(record_dir: Path) -> int:
    """Chunk executions beyond one per chunk: redelivered chunks in the run's timeline."""
    import json

    path = record_dir / "chunks.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return sum(1 for r in rows if r.get("redelivered") or r.get("duplicate"))

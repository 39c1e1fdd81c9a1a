"""A chaos soak: a random worker SIGKILLed every few seconds for the whole run, one worker
SIGSTOPped for 10 s, and a broker fault at the half, on each broker, beside a no-fault run
of the same work in the same invocation.

    nice python benchmarks/chaos.py                 # ~10 minutes: 2 min of work a run
    python benchmarks/chaos.py --short              # ~1.5 minutes (CI runs this form)
    python benchmarks/chaos.py --backends redis

The work: 3 workers, chunks of 10 points of 100 ms (1 s a chunk), 3,600 points (2 minutes of
wall time, 6 minutes of work) or 480 in the short form. The faults, while the run goes:
  - every --kill-every seconds (5), a live worker picked at random is SIGKILLed (the cluster
    replaces it);
  - at 25 %, a live worker is SIGSTOPped; 10 s later it is SIGCONTed if it still lives (the
    liveness check usually kills and replaces it first: that is the point);
  - at 50 %, the broker: Redis loses every client connection of this run's database (CLIENT
    KILL by id), RabbitMQ (a private broker) stops its app for 3 s.
What must hold, and what the result shows: every point verified, nothing lost, each param_id
once in results.parquet, runtime within 1.25 x the no-fault run (the full form only: in the
short one a 3-s broker outage alone is a fifth of the run, so its ratio is shown, not held);
the number of kills, hung events, tasks the orchestrator handed from a dead worker to the
others (Redis; RabbitMQ hands a dead connection's tasks back by itself) and duplicate
deliveries (chunks computed twice).
Writes outputs/bench/chaos-<stamp>/chaos.json (or --output-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pyarrow.parquet as pq  # noqa: E402

from benchmarks.stamp import fresh_dir  # noqa: E402
from ttg_lib.backends import env_urls  # noqa: E402
from ttg_lib.backends.private import RefusalWatch  # noqa: E402
from ttg_lib.cluster.brokers import start_private  # noqa: E402
from ttg_lib.config import RunConfig  # noqa: E402
from ttg_lib.recorded import EventKind, load_events  # noqa: E402
from ttg_lib.run import Run, execute  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

GOAL_RATIO = 1.25


@dataclass(frozen=True)
class Shape:
    total_params: int
    chunk_size: int = 10
    work_ms: float = 100.0
    workers: int = 3


FULL, SHORT = Shape(3_600), Shape(480)


@dataclass
class Chaos:
    """The faults one run suffers, fired from the run's own step loop."""

    kill_every_s: float
    freeze_s: float
    broker_fault: Any  # a callable(run) fired once at 50 %
    seed: int = 0
    kills: int = 0
    frozen: str | None = None
    _next_kill: float = 0.0
    _thaw_at: float | None = None
    _fault_fired: bool = False
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)
        self._next_kill = self.kill_every_s

    def tick(self, run: Run, fraction: float) -> None:
        elapsed = run.elapsed_s
        if elapsed >= self._next_kill:
            self._next_kill += self.kill_every_s
            self._kill_random(run)
        if self.frozen is None and fraction >= 0.25:
            self._freeze(run, elapsed)
        if self._thaw_at is not None and elapsed >= self._thaw_at:
            self._thaw(run)
        if not self._fault_fired and fraction >= 0.5:
            self._fault_fired = True
            self.broker_fault(run)

    def _live(self, run: Run) -> list[str]:
        return [w.name for w in run.cluster.live_workers() if w.name != self.frozen]

    def _kill_random(self, run: Run) -> None:
        live = self._live(run)
        if live:
            try:
                run.kill_worker_now(self._rng.choice(live), reason="chaos")
                self.kills += 1
            except Exception as exc:  # it may have died between the pick and the kill
                print(f"  kill skipped: {exc}", flush=True)

    def _freeze(self, run: Run, elapsed: float) -> None:
        live = self._live(run)
        if live:
            self.frozen = self._rng.choice(live)
            run.cluster.freeze_worker(self.frozen)  # type: ignore[attr-defined]
            self._thaw_at = elapsed + self.freeze_s

    def _thaw(self, run: Run) -> None:
        self._thaw_at = None
        if self.frozen in {w.name for w in run.cluster.live_workers()}:
            run.cluster.thaw_worker(self.frozen)  # type: ignore[attr-defined]


def one_run(out: Path, backend: str, shape: Shape, broker_url: str | None,
            chaos: Chaos | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {"broker_url": broker_url} if broker_url else {}
    cfg = RunConfig.build(backend=backend, scale="small", monitor="none",
                          output_dir=str(fresh_dir(out)), **asdict(shape), **overrides)
    run = Run(cfg, say=lambda line: print(f"  {line}", flush=True))
    summary = execute(cfg, None if chaos is None
                      else lambda progress: chaos.tick(run, progress.fraction), run=run)
    return figures(RunSummary.from_dict(summary), cfg.record_dir, chaos)


def figures(summary: RunSummary, record_dir: Path, chaos: Chaos | None) -> dict[str, Any]:
    events = load_events(record_dir).workers
    kinds = [e.kind for e in events]
    handed_back = sum(_leading_int(e.detail) for e in events if e.kind == EventKind.FREED)
    ids = pq.read_table(record_dir / "results.parquet", columns=["param_id"]).column(0)
    rows, distinct = len(ids), len(set(ids.to_pylist()))
    return {
        "run_id": summary.run_id, "ok": summary.ok, "verified": summary.verified,
        "problems": summary.problems, "runtime_s": summary.runtime_s,
        "total_params": summary.total_params, "params_verified": summary.params_verified,
        "lost_params": summary.lost_params, "results_rows": rows,
        "duplicate_rows": rows - distinct, "duplicate_deliveries": summary.duplicate_deliveries,
        "kills": chaos.kills if chaos else 0, "killed_events": kinds.count(EventKind.KILLED),
        "hung_events": kinds.count(EventKind.HUNG), "frozen": chaos.frozen if chaos else None,
        "tasks_handed_back": handed_back, "workers_replaced": summary.workers_replaced,
        "broker_outages": len(summary.broker_outages),
    }


def _leading_int(text: str) -> int:
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def cut_redis_clients(_run: Run) -> None:
    """Every client connection on this run's database: its workers and its orchestrator."""
    import redis

    client = redis.Redis.from_url(env_urls()["redis"])
    me, db = str(client.client_id()), str(client.connection_pool.connection_kwargs["db"])
    ours = [c["id"] for c in client.client_list(_type="normal") if c["db"] == db and c["id"] != me]
    for ident in ours:
        client.client_kill_filter(_id=ident)
    client.close()
    print(f"  broker fault: {len(ours)} Redis connections cut", flush=True)


def soak(out: Path, backend: str, shape: Shape, kill_every_s: float, seed: int,
         timed: bool = True) -> dict[str, Any]:
    broker = start_private("rabbitmq") if backend == "rabbitmq" else None
    url = broker.url if broker else None
    watch = RefusalWatch(url) if broker else None
    stopper: list[threading.Thread] = []

    def stop_app(_run: Run) -> None:
        assert broker is not None and watch is not None
        watch.start()
        stopper.append(threading.Thread(target=broker.stop_app_for, args=(3.0,)))
        stopper[0].start()
        print("  broker fault: RabbitMQ app stopped for 3 s", flush=True)

    try:
        base = one_run(out, backend, shape, url, None)
        print(f"{backend} no fault: {base['runtime_s']:.2f} s", flush=True)
        chaos = Chaos(kill_every_s, 10.0, stop_app if broker else cut_redis_clients, seed=seed)
        hit = one_run(out, backend, shape, url, chaos)
    finally:
        for thread in stopper:
            thread.join(120)
        if watch:
            watch.stop()
        if broker:
            broker.stop()
    ratio = hit["runtime_s"] / base["runtime_s"]
    holds = {"every_point_verified": hit["ok"] and hit["params_verified"] == hit["total_params"],
             "nothing_lost": hit["lost_params"] == 0,
             "no_duplicate_rows": hit["duplicate_rows"] == 0
             and hit["results_rows"] == hit["total_params"],
             **({f"runtime_within_{GOAL_RATIO}x": ratio <= GOAL_RATIO} if timed else {})}
    print(f"{backend} chaos: {hit['runtime_s']:.2f} s ({ratio:.3f} x), {hit['kills']} kills, "
          f"{hit['hung_events']} hung, {hit['tasks_handed_back']} handed back, "
          f"{hit['duplicate_deliveries']} duplicate deliveries; "
          + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in holds.items()), flush=True)
    return {"no_fault": base, "chaos": hit, "ratio": round(ratio, 3),
            "refused_connections_s": round(watch.down_s, 2) if watch else None,
            "holds": holds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="redis,rabbitmq")
    parser.add_argument("--short", action="store_true", help="the one-minute form CI runs")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    shape = SHORT if args.short else FULL
    out = Path(args.output_dir) / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"shape": asdict(shape), "kill_every_s": args.kill_every,
                              "seed": args.seed, "load_at_start": os.getloadavg(),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "backends": {}}
    started = time.monotonic()
    for backend in args.backends.split(","):
        result["backends"][backend] = soak(out / "runs-root", backend, shape, args.kill_every,
                                           args.seed, timed=not args.short)
        (out / "chaos.json").write_text(json.dumps(result, indent=2))
    result["wall_s"] = round(time.monotonic() - started, 1)
    (out / "chaos.json").write_text(json.dumps(result, indent=2))
    failed = [f"{b}: {k}" for b, r in result["backends"].items() for k, v in r["holds"].items()
              if not v]
    print(f"{result['wall_s']:.0f} s; wrote {out / 'chaos.json'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else "; everything held"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

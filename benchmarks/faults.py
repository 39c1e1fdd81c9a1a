"""The fault table: every figure of the README's "Faults" table, both brokers, one run.

    nice python benchmarks/faults.py                  # both brokers, ~15 min
    python benchmarks/faults.py --backends redis      # one broker

Small preset (1,000 params in 100 chunks of 1 s, 3 workers, ideal 34 s) unless a row says
otherwise; every run is verified (a run that loses or corrupts a result stops the
benchmark). Each row's figures come from real runs on the real brokers:

no fault            runtime
2 of 3 killed       two workers SIGKILLed at 50 % (replaced): runtime, lost params
1 killed at 30 %    the fault demo: runtime, recovered_after_s (dead worker's chunk
                    started again by another worker)
1 frozen at 40 %    SIGSTOP, never resumed: runtime (÷ no fault), hung events, duplicates
broker outage 50 %  Redis: CLIENT KILL TYPE normal (every client's connection cut);
                    RabbitMQ: a private broker's app stopped for 3 s (rabbit:stop(), 3 s,
                    rabbit:start() in one rabbitmqctl eval), measured against a no-fault
                    run on that broker: runtime, the time the broker refused connections
                    (3 s plus the app's start), duplicates
ttg run killed      SIGKILL `ttg run` at 50 % of a 30-chunk run, a new run at once: did it
                    start, how long after, what did it say
--wait              a second `ttg run --wait` while one runs: starts when it ends, both ok
monitor             `ttg monitor --once --json` mid-run (workers paused) against the
                    broker's own figures (Redis: XLEN/XPENDING; RabbitMQ: rabbitmqctl
                    list_queues, with and without the management API)

Writes outputs/bench/faults-<stamp>/faults.json and faults.md (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.stamp import fresh_dir  # noqa: E402
from ttg_lib.backends import env_urls, open_inspector  # noqa: E402
from ttg_lib.backends.private import RefusalWatch  # noqa: E402
from ttg_lib.cluster.brokers import free_port, start_private  # noqa: E402
from ttg_lib.config import RunConfig  # noqa: E402
from ttg_lib.faults import freeze_busy_workers  # noqa: E402
from ttg_lib.monitor import snapshot  # noqa: E402
from ttg_lib.recorded import EventKind, load_events  # noqa: E402
from ttg_lib.run import Run, execute  # noqa: E402
from ttg_lib.summary import RunSummary  # noqa: E402

SHORT = {"total_params": 300, "chunk_size": 10, "work_ms": 100.0}  # 30 chunks of 1 s
QUEUES = ("ttg.tasks", "ttg.tasks.retry", "ttg.tasks.dlq", "ttg.results")


class Bench:
    def __init__(self, out: Path, quick: bool = False):
        self.out = out
        self.shape: dict[str, Any] = SHORT if quick else {}  # quick: a smoke of the script

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def run(self, backend: str, at: float | None = None,
            action: Callable[[Run], None] | None = None, **overrides: Any) -> RunSummary:
        """One verified in-process run; ``action(run)`` once the fraction ``at`` is done."""
        values = {"scale": "small", "monitor": "none", "output_dir": str(fresh_dir(self.out)),
                  **self.shape}
        cfg = RunConfig.build(backend=backend, **{**values, **overrides})
        run = Run(cfg, say=self.say)
        fired = False

        def fire(progress: Any) -> None:
            nonlocal fired
            if action is not None and not fired and progress.fraction >= (at or 0):
                action(run)
                fired = True

        summary = RunSummary.from_dict(execute(cfg, fire, run=run))
        if not summary.ok:
            raise RuntimeError(f"{cfg.run_id} failed verification: {summary.problems}")
        return summary


def kill_two(run: Run) -> None:
    run.kill_worker_now()
    run.kill_worker_now()


def freeze_one(run: Run) -> None:
    cluster = run.cluster
    cluster.freeze_worker(cluster.pick_victim(cluster.live_workers()).name)  # type: ignore


def figures(summary: RunSummary, base: float | None = None) -> dict[str, Any]:
    kinds = [e.kind for e in load_events(summary.record_dir).workers]
    row = {"runtime_s": summary.runtime_s, "lost_params": summary.lost_params,
           "duplicates": summary.duplicate_deliveries,
           "hung_events": kinds.count(EventKind.HUNG), "replaced": summary.workers_replaced}
    if base:
        row["ratio"] = round(summary.runtime_s / base, 3)
        row["extra_s"] = round(summary.runtime_s - base, 2)
    if summary.fault:
        row["recovered_after_s"] = summary.fault.recovered_after_s
    return row


def outage_redis(bench: Bench, base: float) -> dict[str, Any]:
    import redis

    cut: dict[str, int] = {}

    def cut_all(_run: Run) -> None:
        client = redis.Redis.from_url(env_urls()["redis"])
        cut["clients"] = client.client_kill_filter(_type="normal", skipme=True)
        client.close()

    summary = bench.run("redis", at=0.5, action=cut_all)
    return {**figures(summary, base), "fault": "CLIENT KILL TYPE normal",
            "clients_cut": cut.get("clients"), "outages_seen": len(summary.broker_outages)}


def outage_rabbitmq(bench: Bench) -> dict[str, Any]:
    broker = start_private("rabbitmq")
    try:
        base = bench.run("rabbitmq", broker_url=broker.url).runtime_s
        watch = RefusalWatch(broker.url)

        restarter = threading.Thread(target=broker.stop_app_for, args=(3.0,))
        try:
            summary = bench.run("rabbitmq", at=0.5, broker_url=broker.url,
                                action=lambda run: (watch.start(), restarter.start()))
        finally:
            if restarter.ident:
                restarter.join(120)
            watch.stop()
    finally:
        broker.stop()
    return {**figures(summary, base), "fault": "rabbit:stop(), 3 s, rabbit:start()",
            "no_fault_runtime_s": base, "refused_connections_s": round(watch.down_s, 2)}


def ttg_run(bench: Bench, run_id: str, backend: str, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--backend", backend, "--output-dir", str(fresh_dir(bench.out)), "--run-id", run_id,
            *[str(v) for k, v in SHORT.items() for v in (f"--{k.replace('_', '-')}", v)],
            *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_ready_at_most(backend: str, ready_at_most: int, timeout: float = 60) -> None:
    """Poll the broker until another process's run is down to this many ready tasks."""
    published = False
    deadline = time.monotonic() + timeout
    with open_inspector(backend, env_urls()[backend]) as broker:
        while time.monotonic() < deadline:
            ready = broker.stats().tasks.ready
            published = published or ready >= 20
            if published and ready <= ready_at_most:
                return
            time.sleep(0.1)  # another process: nothing to wait on
    raise RuntimeError(f"the run never got down to {ready_at_most} ready tasks")


def orchestrator_killed(bench: Bench, backend: str) -> dict[str, Any]:
    stamp = time.strftime("%H%M%S")
    first = ttg_run(bench, f"killed-{backend}-{stamp}", backend)
    wait_ready_at_most(backend, 12)
    first.kill()
    first.communicate()
    killed = time.monotonic()
    second = ttg_run(bench, f"after-{backend}-{stamp}", backend)
    out, err = second.communicate(timeout=300)
    summary = RunSummary.from_dict(json.loads(out)) if second.returncode in (0, 1) else None
    said = [line for line in err.splitlines() if line.startswith("ttg:")]
    return {"new_run_ok": bool(summary and summary.ok), "exit_code": second.returncode,
            "new_run_wall_s": round(time.monotonic() - killed, 2),
            "new_run_runtime_s": summary.runtime_s if summary else None, "said": said}


def concurrent_wait(bench: Bench, backend: str) -> dict[str, Any]:
    stamp = time.strftime("%H%M%S")
    first = ttg_run(bench, f"first-{backend}-{stamp}", backend)
    wait_ready_at_most(backend, 27)
    refused = ttg_run(bench, f"refused-{backend}-{stamp}", backend)
    _, refused_err = refused.communicate(timeout=120)
    second = ttg_run(bench, f"waited-{backend}-{stamp}", backend, "--wait")
    out2, err2 = second.communicate(timeout=300)
    out1, _ = first.communicate(timeout=120)
    return {"without_wait": refused_err.strip().splitlines()[-1:],
            "without_wait_exit": refused.returncode,
            "first_ok": RunSummary.from_dict(json.loads(out1)).ok,
            "second_ok": RunSummary.from_dict(json.loads(out2)).ok,
            "said": [line for line in err2.splitlines() if line.startswith("ttg:")]}


def monitor_check(bench: Bench, backend: str) -> dict[str, Any]:
    """Pause every worker mid-run, then compare the monitor with the broker's figures."""
    result: dict[str, Any] = {}
    broker = None
    overrides: dict[str, Any] = {"lease_s": 30.0, "liveness_s": 0, **SHORT}
    api_port = free_port()
    if backend == "rabbitmq":  # a private broker: the shared one's plugins are not ours
        broker = start_private("rabbitmq", plugins=("rabbitmq_management",),
                                        config=f"management.tcp.port = {api_port}\n")
        overrides["rabbitmq_url"] = broker.url

    def compare(run: Run) -> None:
        frozen = freeze_busy_workers(run.cluster)
        try:
            time.sleep(0.5)
            if broker is None:
                result.update(compare_redis())
            else:
                result.update(compare_rabbitmq(broker, f"http://127.0.0.1:{api_port}"))
        finally:
            for name in frozen:
                run.cluster.thaw_worker(name)  # type: ignore[union-attr]

    try:
        bench.run(backend, at=0.4, action=compare, **overrides)
    finally:
        os.environ.pop("TTG_RABBITMQ_MANAGEMENT_URL", None)
        if broker is not None:
            broker.stop()
    return result


def compare_redis() -> dict[str, Any]:
    import redis

    url = env_urls()["redis"]
    client = redis.Redis.from_url(url)
    length, pending = client.xlen("ttg:tasks"), client.xpending("ttg:tasks", "ttg-workers")
    client.close()
    with open_inspector("redis", url) as backend:
        tasks = snapshot(backend)["queues"]["tasks"]
    truth = {"messages": length, "unacked": pending["pending"],
             "ready": length - pending["pending"]}
    got = {k: tasks[k] for k in truth}
    return {"broker": truth, "monitor": got, "equal": got == truth}


def compare_rabbitmq(broker: Any, api: str) -> dict[str, Any]:
    def ctl() -> dict[str, dict[str, int]]:
        rows = {}
        for line in broker.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name",
                                       "messages", "messages_ready",
                                       "messages_unacknowledged", "consumers").splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[0] in QUEUES:
                rows[parts[0]] = dict(zip(("messages", "ready", "unacked", "consumers"),
                                          map(int, parts[1:]), strict=True))
        return rows

    def monitor(management_url: str) -> dict[str, dict[str, Any]]:
        os.environ["TTG_RABBITMQ_MANAGEMENT_URL"] = management_url
        with open_inspector("rabbitmq", broker.url) as backend:
            snap = snapshot(backend)
        return {q["name"]: {k: q[k] for k in ("messages", "ready", "unacked", "consumers")}
                for q in snap["queues"].values()} | {"hint": snap.get("hint", "")}

    truth = ctl()
    deadline = time.monotonic() + 12  # the API's unacked: the broker's ~5 s sample
    with_api = monitor(api)
    while time.monotonic() < deadline and any(with_api[n] != truth[n] for n in truth):
        time.sleep(0.2)
        with_api = monitor(api)
    without_api = monitor(f"http://127.0.0.1:{free_port()}")
    never_wrong = all(without_api[n][k] in (truth[n][k], None) for n in truth
                      for k in truth[n])
    return {"broker": truth, "with_api": with_api, "without_api": without_api,
            "equal_with_api": all(with_api[n] == truth[n] for n in truth),
            "without_api_equal_or_unknown": never_wrong, "still": ctl() == truth}


def measure(bench: Bench, backend: str) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    base = bench.run(backend)
    rows["no_fault"] = figures(base)
    rt = base.runtime_s
    bench.say(f"{backend} no fault: {rt} s")
    rows["two_killed"] = figures(bench.run(backend, at=0.5, action=kill_two), rt)
    bench.say(f"{backend} two killed: {rows['two_killed']}")
    rows["one_killed"] = figures(bench.run(backend, fault_demo=True, kill_at=0.3), rt)
    bench.say(f"{backend} one killed: {rows['one_killed']}")
    rows["frozen"] = figures(bench.run(backend, at=0.4, action=freeze_one), rt)
    bench.say(f"{backend} frozen: {rows['frozen']}")
    rows["outage"] = outage_redis(bench, rt) if backend == "redis" else outage_rabbitmq(bench)
    bench.say(f"{backend} outage: {rows['outage']}")
    rows["orchestrator_killed"] = orchestrator_killed(bench, backend)
    bench.say(f"{backend} orchestrator killed: {rows['orchestrator_killed']}")
    rows["wait"] = concurrent_wait(bench, backend)
    bench.say(f"{backend} --wait: {rows['wait']}")
    rows["monitor"] = monitor_check(bench, backend)
    bench.say(f"{backend} monitor: {rows['monitor']}")
    return rows


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The README's fault table, from the measured figures."""
    backends = [b for b in ("redis", "rabbitmq") if b in results]

    def cell(backend: str, fn: Callable[[dict[str, Any]], str]) -> str:
        try:
            return fn(results[backend])
        except (KeyError, TypeError, IndexError) as exc:
            return f"n/a ({exc})"

    def lost(row: dict[str, Any]) -> str:
        return "nothing lost" if row["lost_params"] == 0 else f"{row['lost_params']} lost"

    def dup(row: dict[str, Any]) -> str:
        return f"{row['duplicates']} duplicate" + ("" if row["duplicates"] == 1 else "s")

    specs: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("no fault (small preset, ideal 34.0 s)", lambda r: f"{r['no_fault']['runtime_s']:.2f} s"),
        ("2 of 3 workers SIGKILLed at 50 % (replaced)",
         lambda r: f"{r['two_killed']['runtime_s']:.2f} s ({r['two_killed']['ratio']:.3f} ×), "
                   f"{lost(r['two_killed'])}"),
        ("1 worker SIGKILLed at 30 %: its chunk restarted by another worker after",
         lambda r: f"{r['one_killed']['recovered_after_s']:.2f} s; run "
                   f"{r['one_killed']['runtime_s']:.2f} s ({r['one_killed']['ratio']:.3f} ×)"),
        ("1 worker SIGSTOPped at 40 %, never resumed (killed and replaced as hung)",
         lambda r: f"{r['frozen']['runtime_s']:.2f} s ({r['frozen']['ratio']:.3f} ×), "
                   f"{r['frozen']['hung_events']} hung event, {dup(r['frozen'])}, "
                   f"{lost(r['frozen'])}"),
        ("broker connections cut (Redis `CLIENT KILL TYPE normal`) / app stopped 3 s "
         "(RabbitMQ `rabbit:stop()`, 3 s, `rabbit:start()`) at 50 %",
         lambda r: (f"{r['outage']['runtime_s']:.2f} s (+{r['outage']['extra_s']:.2f} s)"
                    + (f", refused connections {r['outage']['refused_connections_s']:.2f} s "
                       f"(the run's cost beyond them "
                       f"{r['outage']['extra_s'] - r['outage']['refused_connections_s']:+.2f} s)"
                       if "refused_connections_s" in r["outage"] else "")
                    + f", {dup(r['outage'])}, {lost(r['outage'])}")),
        ("`ttg run` SIGKILLed at 50 % (30 chunks), new `ttg run` at once",
         lambda r: ("new run OK" if r["orchestrator_killed"]["new_run_ok"] else "**failed**")
                   + f", done {r['orchestrator_killed']['new_run_wall_s']:.1f} s after the kill"
                   + ("; said: " + "; ".join(s.removeprefix("ttg: ")
                                              for s in r["orchestrator_killed"]["said"])
                      if r["orchestrator_killed"]["said"] else "")),
        ("a second run while one is going: refused; with `--wait`",
         lambda r: ("refused" if r["wait"]["without_wait_exit"] else "**not refused**")
                   + "; --wait: " + ("both verified" if r["wait"]["first_ok"]
                                     and r["wait"]["second_ok"] else "**failed**")),
        ("`ttg monitor` mid-run (workers paused) vs the broker's own figures",
         lambda r: ("equal to XLEN/XPENDING" if r["monitor"].get("equal") else
                    "with the API: " + ("equal to rabbitmqctl" if r["monitor"]
                                        .get("equal_with_api") else "**differs**")
                    + "; without: ready/consumers equal, messages/unacked "
                    + ("unknown (hint shown)" if r["monitor"]
                       .get("without_api_equal_or_unknown") else "**wrong**"))),
    ]
    head = "| fault | " + " | ".join({"redis": "Redis", "rabbitmq": "RabbitMQ"}[b]
                                      for b in backends) + " |"
    lines = [head, "|---" * (len(backends) + 1) + "|"]
    for name, fn in specs:
        lines.append(f"| {name} | " + " | ".join(cell(b, fn) for b in backends) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="redis,rabbitmq")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    parser.add_argument("--quick", action="store_true",
                        help="30 chunks instead of the small preset: checks the script only")
    args = parser.parse_args(argv)
    out = Path(args.output_dir) / f"faults-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(out / "runs-root", quick=args.quick)
    results: dict[str, Any] = {}
    started = time.monotonic()
    for backend in args.backends.split(","):
        results[backend] = measure(bench, backend)
        (out / "faults.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "faults.md").write_text(table)
    print(table)
    print(f"{time.monotonic() - started:.0f} s; wrote {out / 'faults.json'} and "
          f"{out / 'faults.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

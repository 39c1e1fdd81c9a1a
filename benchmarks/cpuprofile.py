"""Where the CPU goes: a TTG run profiled with py-spy (orchestrator and workers), beside the
same run unprofiled for its CPU split per chunk (user function, rest of the worker,
orchestrator, broker), on each broker.

    python benchmarks/cpuprofile.py                       # both cases, both brokers
    python benchmarks/cpuprofile.py --cases million --backends rabbitmq
    python benchmarks/cpuprofile.py --quick               # a smoke: small sizes

Needs py-spy (the ``bench`` extra; ``pip install py-spy``) and the right to ptrace the
processes it starts (root, or kernel.yama.ptrace_scope = 0).

Cases:
  million  the large preset with a dict-valued function: 1,000,000 points of
           ttg_lib.examples:original_point, chunks of 1,000, 0 ms, 3 workers
  chunks   10,000 chunks of 10 points of ttg_lib.compute:placeholder, 0 ms, 3 workers,
           results kept and verified (today's defaults)
Stacks under a module import (start-up) are counted apart (``import_pct``) and left out of
the top frames, which show the steady state. Each case runs on a private broker (started
for it, stopped afterwards), so the broker's CPU (its whole process tree, from /proc) is the
run's alone. Two runs per case and broker: one
plain (runtime, CPU split per chunk from the run's summary and the broker's CPU), one under
``py-spy record --subprocesses --nonblocking`` (on-CPU stacks of the orchestrator and every
worker; the profiled run is slower, its split by function still holds). Writes, under
outputs/bench/profile-<stamp>/: profile.json, the raw collapsed stacks (<case>-<broker>.txt,
for flame graphs: ``flamegraph.pl`` or speedscope), and summary.md: per case and broker the
CPU split and the top frames by self time and by inclusive time, per role.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import cpu_budget  # noqa: E402
from procstat import cpu_s, session_pids  # noqa: E402

from benchmarks.stamp import (  # noqa: E402
    UsageError,
    header,
    parse_brokers,
    stamped_dir,
)
from ttg_lib.backends import get_spec  # noqa: E402
from ttg_lib.cluster.brokers import start_private  # noqa: E402
from ttg_lib.record import load_summary  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    params: int
    chunk: int
    compute: str


CASES = {
    "million": Case("million", 1_000_000, 1_000, "ttg_lib.examples:original_point"),
    "chunks": Case("chunks", 100_000, 10, "ttg_lib.compute:placeholder"),
}
QUICK = {"million": Case("million", 50_000, 1_000, "ttg_lib.examples:original_point"),
         "chunks": Case("chunks", 10_000, 10, "ttg_lib.compute:placeholder")}
TOP = 15
# frames every stack passes through (the CLI, threads, the entry point): not where time goes
GENERIC = ("(click/core.py)", "(threading.py)", "(<frozen runpy>)", "(ttg_lib/commands/base.py)",
           "(concurrent/futures/thread.py)", "(ttg_lib/cli.py)")


def ttg_cmd(case: Case, backend: str, out: Path, run_id: str) -> list[str]:
    return [sys.executable, "-m", "ttg_lib.cli", "run", "--monitor", "none", "--backend",
            backend, "--scale", "large", "--compute", case.compute, "--total-params",
            str(case.params), "--chunk-size", str(case.chunk), "--workers", "3",
            "--run-id", run_id, "--output-dir", str(out / "runs-root" / run_id)]  # fresh: no reuse


def one_run(case: Case, backend: str, url: str, broker_sid: int, out: Path, label: str,
            pyspy: list[str]) -> dict[str, Any]:
    run_id = f"{case.name}-{backend}-{label}-{time.strftime('%H%M%S')}"
    env = {**os.environ, get_spec(backend).url_env: url,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    before = cpu_s(session_pids(broker_sid))
    started = time.perf_counter()
    with (out / f"{run_id}.log").open("w") as log:
        proc = subprocess.run([*pyspy, *ttg_cmd(case, backend, out, run_id)], stdout=log,
                              stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    broker = cpu_s(session_pids(broker_sid)) - before
    summary_file = out / "runs-root" / run_id / "runs" / run_id / "summary.json"
    if proc.returncode not in (0, 1) or not summary_file.exists():
        raise RuntimeError(f"{run_id} failed ({proc.returncode}); see {out / run_id}.log")
    summary = load_summary(summary_file.parent)
    budget = cpu_budget(summary, broker)
    return {"run_id": run_id, "ok": summary.ok, "runtime_s": summary.runtime_s,
            "wall_s": round(wall, 2), "chunks": summary.chunks_total,
            "cpu_s": summary.cpu_s, "broker_cpu_s": round(broker, 3),
            "cpu_us_per_chunk": {k: None if v is None else round(v, 1)
                                 for k, v in budget.items()}}


# -- reading py-spy's collapsed stacks ------------------------------------------------------

def role_of(frames: list[str]) -> tuple[str, list[str]]:
    """The role (orchestrator or worker) of a stack and its Python frames: py-spy starts
    each stack with a "process PID:cmdline" frame per process level; the profiled command is
    `ttg run` (the orchestrator) and its only children are workers. (A child's cmdline can
    be its parent's: py-spy may read it between fork and exec.)"""
    procs = [f for f in frames if f.startswith("process ")]
    role = "worker" if len(procs) >= 2 else "orchestrator"
    return role, [f for f in frames if not f.startswith("process ")]


def summarize_stacks(path: Path) -> dict[str, Any]:
    selfs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    inclusive: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    imports: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        role, frames = role_of(stack.split(";"))
        n = int(count)
        totals[role] += n
        if any(f.startswith("_find_and_load ") for f in frames):
            imports[role] += n  # start-up: module imports, kept apart from the steady state
            continue
        if frames:
            selfs[role][frames[-1]] += n
            for frame in set(frames):
                inclusive[role][frame] += n
    return {role: {"samples": totals[role], "import_samples": imports[role],
                   "import_pct": round(100 * imports[role] / totals[role], 1),
                   "top_self": [(f, c, round(100 * c / totals[role], 1))
                                for f, c in selfs[role].most_common(TOP)],
                   "top_inclusive": [(f, c, round(100 * c / totals[role], 1))
                                     for f, c in inclusive[role].most_common()
                                     if not f.endswith(GENERIC)][:TOP]}
            for role in totals}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Load at start {result['load_at_start'][0]:.2f} (1-min average, "
             f"{result['cpus']} CPUs), {result['date']}, `{result['command']}`", ""]
    for key, row in result["runs"].items():
        plain = row["plain"]
        lines += [f"### {key}", "", f"Plain run: {plain['runtime_s']:.2f} s runtime, "
                  f"{plain['chunks']:,} chunks; profiled run {row['profiled']['runtime_s']:.2f}"
                  " s.", "", "| CPU per chunk (µs) | user function | worker rest | "
                  "orchestrator | broker |", "|---|---|---|---|---|",
                  "| plain run | " + " | ".join(
                      "n/a" if v is None else f"{v:,.0f}"
                      for v in plain["cpu_us_per_chunk"].values()) + " |", ""]
        for role, data in row["frames"].items():
            lines += [f"{role}: {data['samples']:,} samples, {data['import_pct']} % of them "
                      "importing modules (start-up; left out below). Top self, % of all "
                      "samples", "",
                      "| frame | % |", "|---|---|"]
            lines += [f"| `{f}` | {pct} |" for f, _c, pct in data["top_self"][:10]]
            lines += ["", f"{role}: top inclusive", "", "| frame | % |", "|---|---|"]
            lines += [f"| `{f}` | {pct} |" for f, _c, pct in data["top_inclusive"][:10]]
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="million,chunks", help=f"of {', '.join(CASES)}")
    parser.add_argument("--backends", default="rabbitmq,redis")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke)")
    parser.add_argument("--output-dir", default=str(ROOT / "outputs" / "bench"))
    args = parser.parse_args(argv)
    table = QUICK if args.quick else CASES
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [n for n in names if n not in CASES]
    pyspy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        backends = parse_brokers(args.backends)
        if bad or not names:
            raise UsageError(f"unknown case {bad[0] if bad else '(none given)'}; "
                             f"cases: {', '.join(CASES)}")
    except UsageError as exc:
        print(f"cpuprofile.py: {exc}", file=sys.stderr)
        return 2
    if not Path(pyspy_bin).exists():
        print("cpuprofile.py: py-spy is not installed: pip install py-spy (or '.[bench]')",
              file=sys.stderr)
        return 2
    out = stamped_dir(args.output_dir, "profile")
    result: dict[str, Any] = {**header("cpuprofile.py", argv), "rate_hz": args.rate,
                              "runs": {}}
    for name in names:
        case = table[name]
        for backend in backends:
            key = f"{name}/{backend}"
            broker = start_private(backend)
            try:
                plain = one_run(case, backend, broker.url, broker.pid, out, "plain", [])
                stacks = out / f"{name}-{backend}.txt"
                pyspy = [pyspy_bin, "record", "--format", "raw", "--subprocesses",
                         "--nonblocking", "--nolineno", "--rate", str(args.rate), "-o",
                         str(stacks), "--"]
                profiled = one_run(case, backend, broker.url, broker.pid, out, "pyspy", pyspy)
            finally:
                broker.stop()
            result["runs"][key] = {"case": case.__dict__, "plain": plain,
                                   "profiled": profiled, "frames": summarize_stacks(stacks)}
            print(f"[profile] {key}: runtime {plain['runtime_s']:.2f} s, CPU us/chunk "
                  f"{plain['cpu_us_per_chunk']}", flush=True)
            (out / "profile.json").write_text(json.dumps(result, indent=2))
    result["load_at_end"] = os.getloadavg()
    (out / "profile.json").write_text(json.dumps(result, indent=2))
    (out / "summary.md").write_text(markdown(result))
    print(f"wrote {out / 'profile.json'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Two versions of TTG side by side: the same runs, interleaved, in one invocation.

    python benchmarks/ab.py --base f329c6f                  # large + small presets, both brokers
    python benchmarks/ab.py --base main~3 --cases large --repeats 5 --backends redis
    python benchmarks/ab.py --base f329c6f --repeats large=15,small=3   # per case

Only ratios measured side by side mean anything on a shared machine, so every repeat runs
the base and the head back to back (alternating which goes first) and the table reports the
median of head / base per case. The base is checked out into a temporary git worktree and
imported through PYTHONPATH; the head is this checkout. Each run is its own `ttg run --json`
process with the same flags on both sides.

Cases:
    large   1,000,000 params, chunk 1,000, 0 ms, 3 workers   -> throughput_params_s
    small   the small preset (3 workers, 50 ms a param)       -> efficiency
    tiny    the tiny preset, 2 workers (a smoke of this script) -> efficiency
    dict    the large preset through the original system's per-point work (a sha256 and a
            dict: ttg_lib.examples:original_point)               -> throughput_params_s
    chunks  10,000 chunks x 10 params, 0 ms, 3 workers          -> complete_s (lower: faster)
Beside each case's figure: wall_s and cpu_s, the run launch to exit (interpreter start-up,
workers' start and stop, the table's merge included) and the CPU of it and its workers.
Results: outputs/bench/ab-<stamp>/ab.json (or --out DIR) and a printed table with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.stamp import fresh_dir, header  # noqa: E402
from ttg_lib.record import git_commit  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    flags: tuple[str, ...]
    figure: str  # the summary key compared


CASES = {
    "large": Case("large", ("--scale", "large", "--workers", "3"), "throughput_params_s"),
    "small": Case("small", ("--scale", "small", "--workers", "3"), "efficiency"),
    "tiny": Case("tiny", ("--scale", "tiny", "--workers", "2"), "efficiency"),  # a smoke
    "dict": Case("dict", ("--scale", "large", "--workers", "3", "--compute",
                          "ttg_lib.examples:original_point"), "throughput_params_s"),
    # the peers benchmark's fine chunks: results kept, every value recomputed (lower is better)
    "chunks": Case("chunks", ("--scale", "large", "--total-params", "100000", "--chunk-size",
                              "10", "--workers", "3"), "complete_s"),
}


@dataclass
class Side:
    label: str
    tree: Path
    values: dict[str, list[float]] = field(default_factory=dict)


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), rev],
                   check=True)
    return into


def one_run(side: Side, case: Case, backend: str, out: Path) -> dict[str, float]:
    """The case's figure, and the run launch to exit: wall seconds and the CPU seconds of
    `ttg run` with the workers it reaped (what a user waits for and pays)."""
    env = dict(os.environ, PYTHONPATH=str(side.tree))
    args = [sys.executable, "-m", "ttg_lib.cli", "run", "--json", "--monitor", "none",
            "--backend", backend, "--output-dir", str(fresh_dir(out / side.label)), *case.flags]
    cpu0, started = _children_cpu(), time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=side.tree, env=env)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{side.label} {case.name}/{backend} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[-600:]}")
    summary = json.loads(proc.stdout)
    return {case.figure: float(summary[case.figure]), "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children, theirs included
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision compared against")
    parser.add_argument("--cases", default="large,small", help=f"of {','.join(CASES)}")
    parser.add_argument("--backends", default="redis,rabbitmq")
    parser.add_argument("--repeats", default="3", type=_repeats,
                        help="repeats per case: N, or CASE=N,... (the rest 3): short runs are "
                             "the noisy ones (the large preset's ~0.5 s)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cases = [CASES[name] for name in args.cases.split(",")]
    backends = args.backends.split(",")
    out = args.out or ROOT / "outputs" / "bench" / f"ab-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    stamp = header("ab.py", None)
    load = stamp["load_at_start"]
    head_rev = git_commit(short=True, cwd=ROOT)
    with tempfile.TemporaryDirectory(prefix="ttg-ab-") as tmp:
        base = Side("base", checkout(args.base, Path(tmp) / "base"))
        head = Side("head", ROOT)
        try:
            for case in cases:
                for backend in backends:
                    key = f"{case.name}/{backend}"
                    for repeat in range(args.repeats.get(case.name, 3)):
                        order = (base, head) if repeat % 2 == 0 else (head, base)
                        for side in order:
                            for name, value in one_run(side, case, backend, out).items():
                                label = key if name == case.figure else f"{key} {name}"
                                side.values.setdefault(label, []).append(value)
                    for label in (key, f"{key} wall_s", f"{key} cpu_s"):
                        print(f"{label:>24}: base {statistics.median(base.values[label]):,.4g}"
                              f"  head {statistics.median(head.values[label]):,.4g}  head/base "
                              f"{_ratio(head.values[label], base.values[label]):.3f}",
                              flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(base.tree)], check=False)
    result: dict[str, Any] = {
        **stamp, "base": args.base, "head": head_rev, "load_at_end": os.getloadavg(),
        "repeats": args.repeats,
        "cases": {c.name: asdict(c) for c in cases},
        "values": {"base": base.values, "head": head.values},
        "ratio_head_over_base": {k: _ratio(head.values[k], base.values[k]) for k in head.values},
    }
    (out / "ab.json").write_text(json.dumps(result, indent=2))
    print(f"load at start {load[0]:.2f}; written {out / 'ab.json'}")
    return 0


def _repeats(text: str) -> dict[str, int]:
    """``5`` (every case) or ``large=15,small=3``."""
    try:
        if "=" not in text:
            return dict.fromkeys(CASES, int(text))
        given = {name.strip(): int(n) for name, n in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or CASE=N,...") from None
    if unknown := set(given) - set(CASES):
        raise argparse.ArgumentTypeError(f"unknown case {sorted(unknown)}; cases: {list(CASES)}")
    return given


def _ratio(head: list[float], base: list[float]) -> float:
    return statistics.median(head) / statistics.median(base)


if __name__ == "__main__":
    sys.exit(main())

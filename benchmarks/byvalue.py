"""A function shipped by value against the same function by import path (issue 20).

    python benchmarks/byvalue.py                       # large preset, both brokers, 3 repeats
    python benchmarks/byvalue.py --quick --backends redis   # a smoke: 20,000 params, 1 repeat

Both sides run ``ttg_lib.compute:placeholder``'s code on the large preset (1,000,000 params in
chunks of 1,000, 0 ms of work, 3 workers) through the Python API, in this process, one after
the other (alternating which goes first): once by its import path, once as a copy of the
function defined in ``__main__``, which cloudpickle ships by value (stored once on the broker,
loaded once per worker, checked by its sha256). Same verification on both sides. The table
gives the median throughput of each and their ratio; acceptance: by value >= 0.95 x by path.
Results: outputs/bench/byvalue-<stamp>/byvalue.json (or --out DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import ttg_lib
from ttg_lib.compute import placeholder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.stamp import fresh_dir  # noqa: E402
from benchmarks.tables import text_table  # noqa: E402

PATH = "ttg_lib.compute:placeholder"
ACCEPT = 0.95

# placeholder's own code, as a function of __main__: cloudpickle ships it by value
by_value = types.FunctionType(placeholder.__code__, placeholder.__globals__, "by_value")
by_value.__module__ = "__main__"
by_value.__qualname__ = "by_value"


def one_run(fn: Any, backend: str, out: Path, quick: bool, verify: str) -> dict[str, Any]:
    sizes = {"total_params": 20_000} if quick else {}
    sweep = ttg_lib.sweep(fn, None, backend=backend, scale="large", workers=3, verify=verify,
                          output_dir=str(fresh_dir(out)), monitor="none", live=False, **sizes)
    summary = sweep.summary
    if not summary.ok:
        raise SystemExit(f"run {summary.run_id} failed: {summary.problems[:3]}")
    return {"run_id": summary.run_id, "record_dir": summary.record_dir,
            "throughput_params_s": summary.throughput_params_s,
            "runtime_s": summary.runtime_s, "verify_mode": summary.verify_mode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["redis", "rabbitmq"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--verify", default="sample", choices=("full", "sample", "none"))
    parser.add_argument("--quick", action="store_true", help="20,000 params, 1 repeat")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    out = args.out or ROOT / "outputs" / "bench" / time.strftime("byvalue-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for backend in args.backends:
        runs: dict[str, list[dict[str, Any]]] = {"path": [], "value": []}
        for repeat in range(repeats):
            order = [("path", PATH), ("value", by_value)]
            for side, fn in order if repeat % 2 == 0 else order[::-1]:
                runs[side].append(one_run(fn, backend, out, args.quick, args.verify))
        med = {side: statistics.median(r["throughput_params_s"] for r in rs)
               for side, rs in runs.items()}
        ratio = med["value"] / med["path"] if med["path"] else None
        rows.append({"backend": backend, "path_params_s": med["path"],
                     "value_params_s": med["value"], "ratio": ratio,
                     "accepted": ratio is not None and ratio >= ACCEPT, "runs": runs})
    result = {"quick": args.quick, "repeats": repeats, "verify": args.verify,
              "accept": ACCEPT, "load": os.getloadavg(), "host": platform.node(), "rows": rows}
    (out / "byvalue.json").write_text(json.dumps(result, indent=2))
    print("\n".join(text_table(
        ["backend", "by path", "by value", "ratio", ""],
        [[row["backend"], f"{row['path_params_s']:,.0f}/s", f"{row['value_params_s']:,.0f}/s",
          "n/a" if row["ratio"] is None else f"{row['ratio']:.3f}",
          "" if row["accepted"] else f"(below {ACCEPT})"] for row in rows], align="<>>><")))
    print(f"load {os.getloadavg()[0]:.1f}; {out / 'byvalue.json'}")


if __name__ == "__main__":
    main()

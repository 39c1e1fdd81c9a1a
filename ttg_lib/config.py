"""Run configuration: one typed object, validated before anything starts.

Every way into TTG (CLI flags, notebook parameters, JSON files) ends in
:func:`RunConfig.build`, so a bad value is rejected once, with one message
naming the field and what is allowed, before a broker or worker is touched.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .backends.registry import DEFAULT_BACKEND, backend_names, get_spec
from .configcheck import (
    BACKENDS,
    check,
    check_choice,
    point_timeout_text,
)
from .errors import ConfigError
from .urls import redact_url

DEFAULT_COMPUTE = "ttg_lib.compute:placeholder"


@dataclass(frozen=True)
class Scale:
    total_params: int
    chunk_size: int
    work_ms: float


SCALES: dict[str, Scale] = {
    "tiny": Scale(total_params=60, chunk_size=5, work_ms=5.0),
    "small": Scale(total_params=1_000, chunk_size=10, work_ms=100.0),
    "medium": Scale(total_params=10_000, chunk_size=100, work_ms=10.0),
    "large": Scale(total_params=1_000_000, chunk_size=1_000, work_ms=0.0),
}


def new_run_id(backend: str = "run") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{backend}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; immutable once built."""

    backend: str = DEFAULT_BACKEND
    scale: str = "small"
    total_params: int = 1_000
    chunk_size: int = 10
    work_ms: float = 100.0
    workers: int = 3  # local workers (or pods) the run starts; 0: only workers that join
    expect_workers: int = 0  # wait for this many workers on the broker before publishing
    cluster: str = "local"
    compute: str = DEFAULT_COMPUTE  # an import path; for a function shipped by value, its name
    compute_sha256: str = ""  # set: the function travels by value, this is its fingerprint
    space: dict[str, Any] | None = None  # named axes (space.py): fn(**point) for every point
    verify: str = ""  # full | sample | none; "" = full for TTG's own functions, else sample
    verify_rtol: float = 0.0  # floats recomputed must agree within this (0: exactly)
    reuse: str = "all"  # all: points earlier runs here computed with the same function are reused
    version: str = ""  # salt of the function's fingerprint: change it to reuse nothing older
    fingerprint: str = ""  # set by the run: the function's (reuse/fingerprint.py)
    keep_results: bool = True  # write results.parquet (false only to measure what it costs)
    fault_demo: bool = False
    kill_at: float = 0.3
    restart: str = "always"
    max_retries: int = 1  # a point whose function raises is tried again this many times
    # ... at once by default: the wait is spent in the compute process, holding its chunk (a
    # bug raises again anyway; a flaky service may want a delay, doubling per retry)
    retry_delay_s: float = 0.0
    point_timeout: str = ""  # a point running longer is stopped: seconds, "auto" or "" (none)
    max_crashes: int = 1  # a point that kills its compute process is tried 1 + this often
    recycle_after: int = 0  # replace a worker's compute process after N chunks; 0: never
    max_worker_mib: float = 0.0  # ... or once it holds more memory than this; 0: no cap
    max_failures: str = ""  # stop the run once more points failed: N or P%; "": never
    chunks_per_task: int = 0  # consecutive chunks one task message carries; 0: auto
    lease_s: float = 2.0
    liveness_s: float = 3.0  # a worker whose heartbeat is older is killed and replaced; 0: off
    wait: bool = False  # another live run holds the broker: wait for it instead of failing
    timeout_s: float = 0.0
    sample_s: float = 0.5
    monitor: str = "cli"
    broker_url: str = ""  # the backend's URL; build() fills it from the environment
    run_id: str = ""
    output_dir: str = "outputs"
    kube_context: str = ""  # kind/k8s: kubeconfig context (else TTG_KUBE_CONTEXT, see api.py)
    image: str = ""  # kind/k8s: the worker image (k8s: required, one the nodes can pull)
    worker_cpu: str = ""  # kind/k8s: each worker pod's CPU request and limit, e.g. 2 or 500m
    worker_memory: str = ""  # kind/k8s: each worker pod's memory request and limit, e.g. 1Gi
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chunks_total(self) -> int:
        return math.ceil(self.total_params / self.chunk_size)

    @property
    def ideal_runtime_s(self) -> float:
        """Busiest worker's share of whole chunks: no system can beat it without splitting."""
        return (math.ceil(self.chunks_total / self.worker_count) * self.chunk_size
                * self.work_ms / 1000)

    @property
    def worker_count(self) -> int:
        """The workers the run counts on: its own, or at least those it waits for."""
        return max(self.workers, self.expect_workers, 1)

    BUNDLE_MAX, MESSAGES_PER_WORKER = 16, 128  # auto: up to 16 while each worker gets 128

    @property
    def task_bundle(self) -> int:
        """Chunks per task message (a message costs 0.1-0.3 ms of CPU). Auto bundles only while
        every worker still gets 128 messages: a bundle adds under 1 % to the run's tail and to
        what a killed worker gives back, however slow the chunks."""
        if self.chunks_per_task:
            return self.chunks_per_task
        per_worker = self.chunks_total // (self.worker_count * self.MESSAGES_PER_WORKER)
        return max(1, min(self.BUNDLE_MAX, per_worker))

    @property
    def record_dir(self) -> Path:
        return Path(self.output_dir) / "runs" / self.run_id

    @property
    def simulated(self) -> bool:
        """TTG's own work (``ttg_lib.compute``): its cost is ``work_ms``, its values cheap to
        recompute; any other function is the user's, its cost unknown."""
        return self.compute.startswith("ttg_lib.compute:")

    @property
    def effective_timeout_s(self) -> float:
        """The run's wall-clock limit, 0 for none. Given: that. TTG's own simulated work,
        whose cost is known: ten times the ideal plus a margin for start-up. A user's
        function: none, since its cost is unknown (a 75-s sweep must not end ``timed-out`` at
        61 s); dead workers end it as ``stalled``, a hung point meets --point-timeout."""
        if self.timeout_s > 0:
            return self.timeout_s
        if not self.simulated:
            return 0.0
        per_chunk_floor = self.chunks_total * 0.05 / self.worker_count
        return 10 * max(self.ideal_runtime_s, per_chunk_floor) + 60

    @property
    def point_timeout_s(self) -> float:
        """The per-point limit for tasks: seconds, -1 for auto, 0 for none."""
        if self.point_timeout == "auto":
            return -1.0
        return float(self.point_timeout) if self.point_timeout else 0.0

    @property
    def verify_mode(self) -> str:
        """The verification that runs: TTG's own functions are cheap to recompute, so the
        milestone demo's claim stays exact; a user's function is sampled."""
        if self.verify:
            return self.verify
        return "full" if self.simulated else "sample"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["broker_url"] = redact_url(self.broker_url)
        data["chunks_total"] = self.chunks_total
        data["ideal_runtime_s"] = self.ideal_runtime_s
        return data

    @classmethod
    def build(cls, **overrides: Any) -> RunConfig:
        """Apply scale preset, then overrides, then the environment; validate all of it.

        ``None`` means "not given" so notebook parameters and CLI flags can pass
        every field through unchanged.
        """
        given = _broker_url_alias({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(unknown[0], given[unknown[0]],
                              f"unknown setting; allowed: {', '.join(sorted(known))}")
        scale = given.get("scale", "small")
        check_choice("scale", scale, tuple(SCALES))
        preset = SCALES[scale]
        values: dict[str, Any] = {
            "total_params": preset.total_params,
            "chunk_size": preset.chunk_size,
            "work_ms": preset.work_ms,
        }
        values.update(given)
        values = _coerce(values)
        if values.get("space") is not None:
            _apply_space(values, given)
        values["point_timeout"] = point_timeout_text(values.get("point_timeout", ""))
        backend = values.get("backend", DEFAULT_BACKEND)
        check_choice("backend", backend, BACKENDS)
        if not values.get("broker_url"):
            values["broker_url"] = get_spec(backend).url()
        if not values.get("run_id"):
            values["run_id"] = new_run_id(backend)
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> RunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("config file", str(path), "file does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError("config file", str(path), f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError("config file", str(path), "must hold a JSON object of settings")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(**data)

    @classmethod
    def from_record(cls, record_dir: str | Path, **overrides: Any) -> RunConfig:
        """The configuration a run was started with (its ``config.json``), to resume it; the
        broker URL comes from the environment again (the record keeps it redacted)."""
        path = Path(record_dir) / "config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("resume", str(record_dir), "a run record with a config.json "
                                                         "(outputs/runs/<run id>)") from None
        except ValueError as exc:
            raise ConfigError("resume", str(path), f"not valid JSON ({exc})") from None
        known = {f.name for f in fields(cls)} - {"broker_url"}
        settings = {k: v for k, v in data.items() if k in known}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(**settings)

    def validate(self) -> None:
        """One ConfigError naming the field and what is allowed (:mod:`.configcheck`)."""
        check(self)


def _apply_space(values: dict[str, Any], given: dict[str, Any]) -> None:
    """A space decides the number of points; its points are computed, not simulated (no
    work_ms unless given), and a chunk never exceeds the space. A space file may set the
    run's ``point_timeout`` (a flag or parameter given wins)."""
    from .space import load_space  # numpy: only runs with a space need it

    if isinstance(values["space"], dict) and "point_timeout" in values["space"]:
        values["space"] = dict(values["space"])
        limit = values["space"].pop("point_timeout")
        if not given.get("point_timeout"):
            values["point_timeout"] = limit
    space = load_space(values["space"])
    if "total_params" in given and given["total_params"] != space.size:
        raise ConfigError("total_params", given["total_params"],
                          f"leave it out with a space: the space has {space.size:,} points")
    values["space"] = space.to_dict()
    values["total_params"] = space.size
    if "work_ms" not in given:
        values["work_ms"] = 0.0
    if "chunk_size" not in given:
        values["chunk_size"] = min(values["chunk_size"], space.size)


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Accept strings for numbers and booleans (papermill and env vars pass strings)."""
    out = dict(values)
    for f in fields(RunConfig):
        if f.name not in out or not isinstance(out[f.name], str):
            continue
        raw = out[f.name].strip()
        if f.type == "int":
            try:
                out[f.name] = int(raw.replace("_", "").replace(",", ""))
            except ValueError:
                raise ConfigError(f.name, raw, "a whole number") from None
        elif f.type == "float":
            try:
                out[f.name] = float(raw)
            except ValueError:
                raise ConfigError(f.name, raw, "a number") from None
        elif f.type == "bool":
            if raw.lower() not in _BOOL_WORDS:
                raise ConfigError(f.name, raw, "true or false")
            out[f.name] = _BOOL_WORDS[raw.lower()]
    return out


def _broker_url_alias(given: dict[str, Any]) -> dict[str, Any]:
    """``<backend>_url`` (e.g. from older config files) is the broker URL when it names the
    run's backend; another broker's URL is not this run's business."""
    backend = given.get("backend", DEFAULT_BACKEND)
    for name in backend_names():
        url = given.pop(f"{name}_url", None)
        if url is not None and name == backend and not given.get("broker_url"):
            given["broker_url"] = url
    return given

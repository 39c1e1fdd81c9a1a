"""Run configuration: one typed object, validated before anything starts.

Every way into TTG (CLI flags, notebook parameters, JSON files) ends in
:func:`RunConfig.build`, so a bad value is rejected once, with one message
naming the field and what is allowed, before a broker or worker is touched.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .backends.registry import DEFAULT_BACKEND, backend_names, get_spec
from .errors import ConfigError
from .urls import redact_url

BACKENDS = backend_names(runnable=True)  # from the registry: no broker is named here
CLUSTERS = ("local", "kind", "k8s")
MONITORS = ("cli", "none")
VERIFY_MODES = ("", "full", "sample", "none")
REUSE_MODES = ("all", "none")
RESTART_POLICIES = ("always", "never")
DEFAULT_COMPUTE = "ttg_lib.compute:placeholder"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


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
        _check_choice("scale", scale, tuple(SCALES))
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
        values["point_timeout"] = _point_timeout(values.get("point_timeout", ""))
        backend = values.get("backend", DEFAULT_BACKEND)
        _check_choice("backend", backend, BACKENDS)
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
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("cluster", self.cluster, CLUSTERS)
        _check_choice("monitor", self.monitor, MONITORS)
        _check_choice("restart", self.restart, RESTART_POLICIES)
        _check_int("total_params", self.total_params, 1, 100_000_000)
        _check_int("chunk_size", self.chunk_size, 1, 1_000_000)
        _check_int("workers", self.workers, 0, 256)
        _check_int("expect_workers", self.expect_workers, 0, 10_000)
        if self.workers == 0 and not self.expect_workers:
            raise ConfigError("workers", 0, "at least 1, or 0 with expect_workers N: the run "
                                            "then waits for N workers started elsewhere "
                                            "(ttg worker) to join")
        if self.workers == 0 and self.cluster != "local":
            raise ConfigError("workers", 0, f"at least 1 with cluster {self.cluster!r} (0 "
                                            f"is for workers on hosts of your own)")
        if self.compute_sha256 and not re.fullmatch(r"[0-9a-f]{64}", self.compute_sha256):
            raise ConfigError("compute_sha256", self.compute_sha256,
                              "the sha256 of a function shipped by value (64 hex digits)")
        _check_int("max_retries", self.max_retries, 0, 100)
        _check_int("max_crashes", self.max_crashes, 0, 100)
        _check_int("recycle_after", self.recycle_after, 0, 100_000_000)
        _check_int("chunks_per_task", self.chunks_per_task, 0, 1_000)
        _check_number("max_worker_mib", self.max_worker_mib, 0, 1 << 30)
        from .failures import FailureBudget

        FailureBudget.parse(self.max_failures)  # a ConfigError names what is allowed
        _check_number("work_ms", self.work_ms, 0, 60_000)
        _check_number("retry_delay_s", self.retry_delay_s, 0, 3600)
        _check_number("lease_s", self.lease_s, 0.5, 600)
        _check_number("liveness_s", self.liveness_s, 0, 3600)
        if 0 < self.liveness_s < 1:
            raise ConfigError("liveness_s", self.liveness_s,
                              "0 (off) or at least 1 s: a busy worker's heartbeat may be "
                              "0.5 s old")
        _check_number("timeout_s", self.timeout_s, 0, 7 * 24 * 3600)
        _check_number("sample_s", self.sample_s, 0, 3600)
        if self.verify not in VERIFY_MODES:
            raise ConfigError("verify", self.verify, "one of full, sample, none")
        _check_number("verify_rtol", self.verify_rtol, 0, 1)
        _check_choice("reuse", self.reuse, REUSE_MODES)
        if not isinstance(self.version, str) or len(self.version) > 200:
            raise ConfigError("version", self.version, "a text of at most 200 characters")
        if not isinstance(self.kill_at, (int, float)) or not 0 < self.kill_at < 1:
            raise ConfigError("kill_at", self.kill_at,
                              "a fraction of chunks done, strictly between 0 and 1 (e.g. 0.3)")
        if self.chunk_size > self.total_params:
            raise ConfigError("chunk_size", self.chunk_size,
                              f"must not exceed total_params ({self.total_params})")
        if not RUN_ID_PATTERN.match(self.run_id):
            raise ConfigError("run_id", self.run_id,
                              "1-63 characters: letters, digits, '-', '_' or '.', "
                              "starting with a letter or digit")
        if ":" not in self.compute or self.compute.count(":") != 1:
            raise ConfigError("compute", self.compute,
                              "an import path 'package.module:function'")
        _check_url("broker_url", self.broker_url, self.backend)
        from .cluster.podsettings import check_pod_settings

        check_pod_settings(self)
        if self.fault_demo and self.workers < 2:
            raise ConfigError("workers", self.workers,
                              "the fault demo kills one worker, so it needs at least 2")


def _point_timeout(value: Any) -> str:
    """``--point-timeout``: seconds (> 0), ``auto``, or nothing; as canonical text."""
    if value in (None, "", 0, "0", "none"):
        return ""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not 0 < seconds <= 7 * 24 * 3600:
        raise ConfigError("point_timeout", value, "a number of seconds greater than 0, "
                                                  "'auto' (10 x the p99 of the points "
                                                  "finished so far, at least 10 s) or none")
    return f"{seconds:g}"


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


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, value, f"one of {', '.join(allowed)}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"a whole number from {low:,} to {high:,}")


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or not low <= value <= high:
        raise ConfigError(name, value, f"a number from {low:g} to {high:g}")


def _broker_url_alias(given: dict[str, Any]) -> dict[str, Any]:
    """``<backend>_url`` (e.g. from older config files) is the broker URL when it names the
    run's backend; another broker's URL is not this run's business."""
    backend = given.get("backend", DEFAULT_BACKEND)
    for name in backend_names():
        url = given.pop(f"{name}_url", None)
        if url is not None and name == backend and not given.get("broker_url"):
            given["broker_url"] = url
    return given


def _check_url(name: str, value: Any, backend: str) -> None:
    spec = get_spec(backend)
    schemes = spec.url_schemes
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in schemes or not (parsed.hostname or parsed.path):
        raise ConfigError(name, redact_url(value) if isinstance(value, str) else value,
                          f"a {spec.title} URL with scheme {' or '.join(schemes)}, e.g. "
                          f"{spec.default_url}")
    try:
        _ = parsed.port
    except ValueError:
        raise ConfigError(name, redact_url(value), "the port must be a number 1-65535") from None

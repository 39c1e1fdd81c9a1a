"""The checks behind :meth:`RunConfig.validate`: every setting's allowed values in one place,
so each bad value gets one message naming the field and what is allowed."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlparse

from .backends.registry import backend_names, get_spec
from .errors import ConfigError
from .urls import redact_url

BACKENDS = backend_names(runnable=True)  # from the registry: no broker is named here
CLUSTERS = ("local", "kind", "k8s")
MONITORS = ("cli", "none")
VERIFY_MODES = ("", "full", "sample", "none")
REUSE_MODES = ("all", "none")
RESTART_POLICIES = ("always", "never")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check(cfg: Any) -> None:
    """Every field of a built RunConfig within what is allowed."""
    check_choice("backend", cfg.backend, BACKENDS)
    check_choice("cluster", cfg.cluster, CLUSTERS)
    check_choice("monitor", cfg.monitor, MONITORS)
    check_choice("restart", cfg.restart, RESTART_POLICIES)
    _check_int("total_params", cfg.total_params, 1, 1_000_000_000)  # a space: up to 10^9 too
    _check_int("chunk_size", cfg.chunk_size, 1, 1_000_000)
    _check_int("workers", cfg.workers, 0, 256)
    _check_int("expect_workers", cfg.expect_workers, 0, 10_000)
    if cfg.workers == 0 and not cfg.expect_workers:
        raise ConfigError("workers", 0, "at least 1, or 0 with expect_workers N: the run "
                                        "then waits for N workers started elsewhere "
                                        "(ttg worker) to join")
    if cfg.workers == 0 and cfg.cluster != "local":
        raise ConfigError("workers", 0, f"at least 1 with cluster {cfg.cluster!r} (0 "
                                        f"is for workers on hosts of your own)")
    if cfg.compute_sha256 and not re.fullmatch(r"[0-9a-f]{64}", cfg.compute_sha256):
        raise ConfigError("compute_sha256", cfg.compute_sha256,
                          "the sha256 of a function shipped by value (64 hex digits)")
    _check_int("max_retries", cfg.max_retries, 0, 100)
    _check_int("max_crashes", cfg.max_crashes, 0, 100)
    _check_int("recycle_after", cfg.recycle_after, 0, 100_000_000)
    _check_int("chunks_per_task", cfg.chunks_per_task, 0, 1_000)
    _check_number("max_worker_mib", cfg.max_worker_mib, 0, 1 << 30)
    from .failures import FailureBudget

    FailureBudget.parse(cfg.max_failures)  # a ConfigError names what is allowed
    _check_number("work_ms", cfg.work_ms, 0, 60_000)
    _check_number("retry_delay_s", cfg.retry_delay_s, 0, 3600)
    _check_number("lease_s", cfg.lease_s, 0.5, 600)
    _check_number("liveness_s", cfg.liveness_s, 0, 3600)
    if 0 < cfg.liveness_s < 1:
        raise ConfigError("liveness_s", cfg.liveness_s,
                          "0 (off) or at least 1 s: a busy worker's heartbeat may be "
                          "0.5 s old")
    _check_number("timeout_s", cfg.timeout_s, 0, 7 * 24 * 3600)
    _check_number("sample_s", cfg.sample_s, 0, 3600)
    if cfg.verify not in VERIFY_MODES:
        raise ConfigError("verify", cfg.verify, "one of full, sample, none")
    _check_number("verify_rtol", cfg.verify_rtol, 0, 1)
    check_choice("reuse", cfg.reuse, REUSE_MODES)
    if not isinstance(cfg.version, str) or len(cfg.version) > 200:
        raise ConfigError("version", cfg.version, "a text of at most 200 characters")
    if not isinstance(cfg.kill_at, (int, float)) or not 0 < cfg.kill_at < 1:
        raise ConfigError("kill_at", cfg.kill_at,
                          "a fraction of chunks done, strictly between 0 and 1 (e.g. 0.3)")
    if cfg.chunk_size > cfg.total_params:
        raise ConfigError("chunk_size", cfg.chunk_size,
                          f"must not exceed total_params ({cfg.total_params})")
    if not RUN_ID_PATTERN.match(cfg.run_id):
        raise ConfigError("run_id", cfg.run_id,
                          "1-63 characters: letters, digits, '-', '_' or '.', "
                          "starting with a letter or digit")
    if ":" not in cfg.compute or cfg.compute.count(":") != 1:
        raise ConfigError("compute", cfg.compute,
                          "an import path 'package.module:function'")
    _check_url("broker_url", cfg.broker_url, cfg.backend)
    from .cluster.podsettings import check_pod_settings

    check_pod_settings(cfg)
    if cfg.fault_demo and cfg.workers < 2:
        raise ConfigError("workers", cfg.workers,
                          "the fault demo kills one worker, so it needs at least 2")


def point_timeout_text(value: Any) -> str:
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


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, value, f"one of {', '.join(allowed)}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"a whole number from {low:,} to {high:,}")


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or not low <= value <= high:
        raise ConfigError(name, value, f"a number from {low:g} to {high:g}")


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

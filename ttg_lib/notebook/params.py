"""Notebook parameters -> a RunConfig, and the one line that announces the run."""

from __future__ import annotations

import os
from typing import Any

from ..config import RunConfig
from ..paths import resolve_output_dir

SCALE_ENV = "TTG_NOTEBOOK_SCALE"


def notebook_scale(scale: str | None = None) -> str:
    """An explicit parameter wins; otherwise $TTG_NOTEBOOK_SCALE (CI uses ``tiny``);
    otherwise the milestone's ``small``."""
    return scale or os.environ.get(SCALE_ENV) or "small"


def build_config(**params: Any) -> RunConfig:
    """RunConfig from notebook parameters (None = not given); raises ConfigError."""
    params = dict(params)
    params["scale"] = notebook_scale(params.get("scale"))
    params["output_dir"] = str(resolve_output_dir(params.get("output_dir")))
    params.setdefault("monitor", "none")
    return RunConfig.build(**params)


def describe(config: RunConfig) -> str:
    """One line about the run about to start (the notebooks print it; tests read the id)."""
    fault = f", fault at {config.kill_at:.0%}" if config.fault_demo else ""
    space = ""
    if config.space is not None:  # the space decides the points: say which, and what computes
        from ..space import describe_space

        space = (f"space: {describe_space(config.space)}, computed by {config.compute} "
                 f"(verify: {config.verify_mode})\n")
    return (f"run {config.run_id}: {config.backend}, {config.scale} ({config.total_params:,} "
            f"params in {config.chunks_total} chunks of {config.chunk_size}, "
            f"{config.work_ms:g} ms each), {config.workers} workers{fault}\n"
            f"{space}record: {config.record_dir}")

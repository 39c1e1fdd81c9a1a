"""Where workers run: the embedded local cluster, or Kubernetes (Kind or any context)."""

from __future__ import annotations

from .base import Cluster, ClusterError, ClusterEvent, WorkerInfo, WorkerState, WorkerStatus

__all__ = ["Cluster", "ClusterError", "ClusterEvent", "WorkerInfo", "WorkerState",
           "WorkerStatus"]

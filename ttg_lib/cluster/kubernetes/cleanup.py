"""Cleanup: delete TTG-labelled objects in namespace ttg (``ttg cleanup --kubernetes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..base import ClusterError
from .api import Api, make_api_client, resolve_context
from .labels import COMPONENT, NAMESPACE, ORCHESTRATOR, RUN_LABEL, TTG_SELECTOR, run_label

if TYPE_CHECKING:
    from ...cleanup_report import CleanupReport

# Deletion order for cleanup: workloads first (their pods go with them), then the rest.
CLEANUP_KINDS = ("Deployment", "StatefulSet", "Service", "NetworkPolicy", "ConfigMap", "Secret",
                 "PersistentVolumeClaim", "Pod")


def cleanup_kubernetes(*, run_id: str | None = None, dry_run: bool = False,
                       report: CleanupReport, context: str | None = None,
                       api_client: Any = None) -> None:
    """Delete TTG-labelled objects in namespace ttg (only a run's, given ``run_id``).

    Every list and delete carries ``app.kubernetes.io/part-of=ttg``. The namespace itself is
    kept: it may hold objects that are not TTG's, and listing those would need an unlabelled
    list. Errors are reported as skipped, never raised.
    """
    try:
        if api_client is None:
            context = resolve_context(context)
            api_client = make_api_client(context)
        api = Api(api_client)
    except ClusterError as exc:
        report.skipped.append(f"kubernetes: {exc}")
        return
    where = f"kubernetes[{context or 'current context'}]"
    # An in-cluster orchestrator wears part-of=ttg (the brokers' NetworkPolicies admit it) and
    # component=orchestrator: cleanup never deletes the process that may be running it.
    selector = (TTG_SELECTOR + f",{COMPONENT}!={ORCHESTRATOR}"
                + (f",{RUN_LABEL}={run_label(run_id)}" if run_id else ""))
    try:
        for kind in CLEANUP_KINDS:
            items = api.list(kind, selector)
            if not items:
                continue
            if not dry_run:
                api.delete_collection(kind, selector)
            report.removed.extend(f"{where} {kind} {NAMESPACE}/{o['metadata']['name']}"
                                  for o in items)
        if not run_id and api.list("Namespace", TTG_SELECTOR, field_selector=
                                   f"metadata.name={NAMESPACE}"):
            report.skipped.append(f"{where} Namespace {NAMESPACE}: kept (it may hold objects "
                                  f"that are not TTG's); `kind delete cluster --name ttg` "
                                  f"removes the whole Kind cluster")
    except ClusterError as exc:
        report.skipped.append(f"{where}: {exc}")

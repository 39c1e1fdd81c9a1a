"""`ttg cleanup`: remove exactly what TTG created, nothing else.

* processes: only those in a run's ledger whose pid, start time and command
  line still match (a reused pid is never signalled);
* broker objects: only the fixed TTG queue and key names, one by one — never
  FLUSHALL/FLUSHDB, never a pattern delete, never a queue of another name;
* Kubernetes: only objects labelled ``app.kubernetes.io/part-of=ttg``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .backends import BrokerUnavailable, ExpiringLock, Producer, RunLocked, open_producer
from .cleanup_report import CleanupReport
from .procs import all_ledgers, stop_entry

__all__ = ["CleanupReport", "cleanup", "cleanup_processes", "cleanup_queues"]


def cleanup_processes(output_dir: Path, run_id: str | None, dry_run: bool,
                      report: CleanupReport) -> None:
    for ledger in all_ledgers(output_dir):
        for entry in ledger.entries():
            if run_id and entry.run_id != run_id:
                continue
            if not entry.is_alive_and_ours():
                continue
            label = f"{entry.kind} process {entry.name} pid {entry.pid} (run {entry.run_id})"
            if dry_run or stop_entry(entry):
                report.removed.append(label)
            if entry.kind == "broker" and not dry_run:
                shutil.rmtree(entry.marker, ignore_errors=True)  # the broker's temp data dir


def cleanup_queues(backends: dict[str, str], dry_run: bool, report: CleanupReport,
                   force: bool = False) -> None:
    for name, url in backends.items():
        backend = open_producer(name, url)
        try:
            backend.connect()
        except BrokerUnavailable as exc:
            report.skipped.append(f"{name}: {exc}")
            continue
        try:
            if not force and _run_is_live(backend):
                report.skipped.append(f"{name}: a TTG run is live on this broker; its queues "
                                      f"stay (stop the run first, or pass --force)")
                continue
            report.removed.extend(backend.purge(dry_run=dry_run))
            if isinstance(backend, ExpiringLock):  # a lock that outlives a crashed holder
                report.removed.extend(backend.drop_lock(dry_run=dry_run))
        finally:
            backend.close()


def _run_is_live(backend: Producer) -> bool:
    """Probe the run lock: if we can take it, nobody holds it."""
    probe = "ttg-cleanup-probe"
    try:
        backend.acquire_run(probe)
    except RunLocked:
        return True
    backend.release_run(probe)
    return False


def cleanup(*, output_dir: Path, backends: dict[str, str], processes: bool, queues: bool,
            kubernetes: bool = False, run_id: str | None = None,
            dry_run: bool = False, force: bool = False,
            kube_context: str | None = None) -> CleanupReport:
    report = CleanupReport(dry_run=dry_run)
    if processes:
        cleanup_processes(output_dir, run_id, dry_run, report)
    if queues:
        cleanup_queues(backends, dry_run, report, force=force)
    if kubernetes:
        try:
            from .cluster.kubernetes import cleanup_kubernetes
        except ImportError:
            report.skipped.append("kubernetes: provider not installed (pip install 'ttg[k8s]')")
        else:
            cleanup_kubernetes(run_id=run_id, dry_run=dry_run, report=report,
                               context=kube_context)
    return report

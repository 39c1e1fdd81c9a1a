"""End to end on a real Kind cluster: create (or reuse) the cluster ``ttg``, build and load the
worker image, deploy the brokers, run a small sweep with a pod killed at 30 % on each backend,
verify every result, clean up TTG's objects, and check that a non-TTG namespace, pod and
ConfigMap were left untouched. ``test_first_contact_script`` runs scripts/kind-e2e.sh, the
same steps a user runs by hand.

Runs only where a Docker engine answers (``docker info`` succeeds: a docker CLI alone is not
enough) with buildx, and a kind release TTG has a node image for is on PATH
(ttg_lib.cluster.kind.check_tools); skipped
with the reason otherwise. Takes several minutes the
first time (node image, broker images, worker image build). The cluster is deleted at the end
only if this test created it; set TTG_E2E_KEEP_CLUSTER=1 to keep it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _why_not_kind() -> str | None:
    from ttg_lib.cluster.kind import check_tools

    missing = [c.line() for c in check_tools() if not c.ok]
    return "; ".join(missing) or None


WHY_NOT = _why_not_kind()
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kind-e2e.sh"
needs_kind = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"needs a Docker engine with buildx and a supported kind "
                                       f"for the Kind end-to-end test: {WHY_NOT}")

BYSTANDER_NS = "ttg-e2e-bystander"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"


@pytest.fixture(scope="module")
def kind_cluster():
    pytest.importorskip("kubernetes", reason="the k8s extra is not installed")
    from kubernetes import client, config

    from ttg_lib.cluster import kind as ttg_kind

    created = "created" in ttg_kind.create_cluster()
    ttg_kind.build_image()
    ttg_kind.load_image()
    api_client = config.new_client_from_config(context=ttg_kind.CONTEXT)
    core = client.CoreV1Api(api_client)
    # Things that are not TTG's and must survive everything TTG does.
    core.create_namespace({"metadata": {"name": BYSTANDER_NS}})
    pod = {"metadata": {"name": "bystander", "labels": {"app": "bystander"}},
           "spec": {"containers": [{"name": "pause", "image": PAUSE_IMAGE}]}}
    core.create_namespaced_pod(BYSTANDER_NS, pod)
    yield api_client
    core.delete_namespace(BYSTANDER_NS)
    if created and not os.environ.get("TTG_E2E_KEEP_CLUSTER"):
        ttg_kind.delete_cluster()


def _ttg_objects(api_client) -> list[str]:
    from ttg_lib.cluster.kubernetes import CLEANUP_KINDS, TTG_SELECTOR
    from ttg_lib.cluster.kubernetes.api import Api

    api = Api(api_client)
    left = []
    for kind in CLEANUP_KINDS:
        left += [f"{kind}/{o['metadata']['name']}" for o in api.list(kind, TTG_SELECTOR)
                 if not o["metadata"].get("deletionTimestamp")]
    return left


@pytest.mark.kind
@pytest.mark.slow
@pytest.mark.timeout(3600)
@needs_kind
@pytest.mark.parametrize("backend", ["redis", "rabbitmq"])
def test_small_run_with_a_pod_killed_on_kind(kind_cluster, backend, tmp_path):
    from kubernetes import client

    from ttg_lib.cluster.kubernetes import NAMESPACE, KubernetesCluster
    from ttg_lib.config import RunConfig
    from ttg_lib.run import execute

    config = RunConfig.build(cluster="kind", backend=backend, scale="small", workers=3,
                             fault_demo=True, kill_at=0.3, monitor="none",
                             output_dir=str(tmp_path))
    provider = KubernetesCluster.for_run(config)
    url = provider.ensure_brokers(timeout=900)
    config = dataclasses.replace(config, **{f"{backend}_url": url})
    core = client.CoreV1Api(kind_cluster)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "e2e-bystander"},
                                                  "data": {"keep": "me"}})

    summary = execute(config)

    assert summary["ok"], summary["problems"]
    assert summary["lost_params"] == 0 and summary["wrong_results"] == 0
    assert summary["fault"]["killed_worker"].startswith("ttg-worker-")
    assert summary["fault"]["recovered_after_s"] is not None  # a hard kill: chunk redelivered
    assert summary["workers_replaced"] >= 1
    assert summary["cluster"] == "kind"

    from ttg_lib.cleanup import CleanupReport
    from ttg_lib.cluster.kubernetes import cleanup_kubernetes

    report = CleanupReport(dry_run=False)
    cleanup_kubernetes(report=report, context="kind-ttg")
    assert report.removed, report.lines()
    deadline = time.monotonic() + 180
    while _ttg_objects(kind_cluster) and time.monotonic() < deadline:
        time.sleep(2)  # pods and PVCs finish terminating on their own schedule
    assert _ttg_objects(kind_cluster) == []
    assert core.read_namespaced_config_map("e2e-bystander", NAMESPACE).data == {"keep": "me"}
    core.delete_namespaced_config_map("e2e-bystander", NAMESPACE)  # the test's own object
    assert core.read_namespace(BYSTANDER_NS).status.phase == "Active"
    assert core.read_namespaced_pod("bystander", BYSTANDER_NS).metadata.deletion_timestamp is None


@pytest.mark.kind
@pytest.mark.slow
@pytest.mark.timeout(3600)
@needs_kind
def test_first_contact_script():
    """scripts/kind-e2e.sh: cluster, image, brokers, both demos with the kill, teardown."""
    done = subprocess.run([str(SCRIPT), "--scale", "small"], capture_output=True, text=True,
                          timeout=3600, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for backend in ("redis", "rabbitmq"):
        assert f"{backend}: killed ttg-worker-" in output and "chunk recovered after" in output


@pytest.mark.skipif(WHY_NOT is None, reason="docker and kind are here: the script would run")
def test_first_contact_script_without_the_tools_changes_nothing():
    """This interpreter (TTG_PYTHON): a checkout without .venv (CI, a worktree) must not
    install one (scripts/setup.sh, a minute and a half) to find the tools missing."""
    done = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, "TTG_PYTHON": sys.executable})
    assert done.returncode == 3
    assert "are needed (see above); nothing was changed" in done.stderr
    assert "MISSING" in done.stdout


def test_first_contact_script_is_valid_bash_and_reads_the_users_image_tag():
    """The script cannot run here (no Docker engine): its syntax, and the line it takes the
    user's image tag from, are checked against what `kind up --requirements` prints."""
    from ttg_lib.cluster.kind import worker_image_line

    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert "--requirements" in text and "--compute mymodel:simulate" in text
    (sed,) = [line for line in text.splitlines() if line.startswith("IMAGE=")]
    expression = sed.split("sed -n '", 1)[1].split("'", 1)[0]
    tag = "ttg-worker:user-0123456789ab"
    got = subprocess.run(["sed", "-n", expression], input=f"something else\n"
                         f"{worker_image_line(tag)}\n", capture_output=True, text=True,
                         check=True).stdout
    assert got == tag + "\n"

"""Any cluster (issue 21, item 3): the worker image and its pull policy, the kubeconfig
context (one resolver for run, cleanup and notebooks), worker resources, and what the dry
run shows. Unit tests: no API server, no broker."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import require_package

require_package("kubernetes", "the k8s extra is not installed (pip install 'ttg[k8s]')")

from ttg_lib.cli import main  # noqa: E402
from ttg_lib.cluster.kubernetes import KubernetesCluster  # noqa: E402
from ttg_lib.cluster.kubernetes.api import resolve_context  # noqa: E402
from ttg_lib.cluster.kubernetes.manifests import render_objects, worker_container  # noqa: E402
from ttg_lib.cluster.podsettings import pull_policy  # noqa: E402
from ttg_lib.config import RunConfig  # noqa: E402
from ttg_lib.errors import ConfigError  # noqa: E402

DIGEST = "registry.example.com/team/ttg-worker@sha256:" + "ab" * 32


def run_cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["run", *args], env=env, catch_exceptions=False)


def test_k8s_without_an_image_is_one_clear_error(tmp_path):
    result = run_cli("--cluster", "k8s", "--output-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "needs --image" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing started, no half-written record
    with pytest.raises(ConfigError, match="image"):
        RunConfig.build(cluster="k8s")


@pytest.mark.parametrize("image,flavor,policy", [
    ("registry.example.com/ttg-worker:1.2", "k8s", "Always"),  # a tag may be re-pushed
    ("registry.example.com/ttg-worker:latest", "k8s", "Always"),
    (DIGEST, "k8s", "IfNotPresent"),  # a digest never changes
    ("ttg-worker:dev", "kind", "IfNotPresent"),  # side-loaded: nothing to pull from
    ("ttg-worker:user-0123456789ab", "kind", "IfNotPresent"),
    ("localhost:5001/ttg-worker:dev", "kind", "Always"),  # Kind with a local registry
])
def test_pull_policy_follows_the_image_reference(image, flavor, policy):
    assert pull_policy(image, flavor) == policy
    objects = render_objects(flavor=flavor, backend="redis", run_id="r1", workers=1,
                             image=image, k8s_dir=None)
    container = worker_container(objects)
    assert (container["image"], container["imagePullPolicy"]) == (image, policy)


def test_worker_cpu_and_memory_are_requests_and_limits():
    config = RunConfig.build(cluster="k8s", image=DIGEST, worker_cpu="2", worker_memory="4Gi")
    container = worker_container(KubernetesCluster.for_run(config).objects())
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "2", "memory": "4Gi"}}
    for field, bad in (("worker_cpu", "2 cores"), ("worker_memory", "4GB!")):
        with pytest.raises(ConfigError, match=field):
            RunConfig.build(cluster="kind", **{field: bad})


def test_one_context_resolver_for_run_cleanup_and_notebooks(monkeypatch):
    monkeypatch.delenv("TTG_KUBE_CONTEXT", raising=False)
    assert resolve_context(None, "kind") == "kind-ttg"
    assert resolve_context(None, "k8s") is None  # the kubeconfig's current context
    assert resolve_context("prod", "kind") == "prod"
    monkeypatch.setenv("TTG_KUBE_CONTEXT", "staging")
    # `ttg run --cluster k8s` used to ignore TTG_KUBE_CONTEXT, which cleanup honoured
    for config in (RunConfig.build(cluster="k8s", image=DIGEST),
                   RunConfig.build(cluster="kind")):
        assert KubernetesCluster.for_run(config).context == "staging"
    assert resolve_context(None, None) == "staging"  # what cleanup asks
    config = RunConfig.build(cluster="k8s", image=DIGEST, kube_context="prod")
    assert KubernetesCluster.for_run(config).context == "prod"


def test_cleanup_takes_the_kube_context_flag(monkeypatch):
    seen = {}

    def fake_cleanup(**kwargs):
        from ttg_lib.cleanup_report import CleanupReport

        seen.update(kwargs)
        return CleanupReport(dry_run=True)

    monkeypatch.setattr("ttg_lib.cleanup.cleanup", fake_cleanup)
    result = CliRunner().invoke(main, ["cleanup", "--kubernetes", "--dry-run",
                                       "--kube-context", "prod"])
    assert result.exit_code == 0, result.output
    assert seen["kube_context"] == "prod" and seen["kubernetes"]


def test_dry_run_shows_image_pull_policy_context_and_resources(monkeypatch):
    monkeypatch.delenv("TTG_KUBE_CONTEXT", raising=False)
    result = run_cli("--cluster", "k8s", "--image", "registry.example.com/ttg-worker:1.2",
                     "--kube-context", "prod", "--worker-cpu", "1500m",
                     "--worker-memory", "3Gi", "--dry-run")
    assert result.exit_code == 0, result.output
    head = result.output.splitlines()[:2]
    assert "context prod" in head[0]
    assert head[1] == ("Worker pods: image registry.example.com/ttg-worker:1.2 "
                       "(imagePullPolicy Always), requests cpu 1500m, memory 3Gi, "
                       "limits cpu 1500m, memory 3Gi")
    kind = run_cli("--cluster", "kind", "--dry-run").output.splitlines()[:2]
    assert "context kind-ttg" in kind[0] and "ttg-worker:dev (imagePullPolicy IfNotPresent)" \
        in kind[1]

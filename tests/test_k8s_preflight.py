"""The preflight (issue 21, item 2): before any task is published, one pod with the worker
image and environment loads the run's function; if it cannot, the run stops with that pod's
error and nothing is published or dead-lettered. On the stand-in, whose kubelet runs the pod
as a real process with the image's Python path (TTG only) and a working directory of its own.
"""

from __future__ import annotations

import time

import pytest
from conftest import require_package

pytestmark = pytest.mark.slow  # a stand-in API server whose kubelet runs real processes

require_package("kubernetes", "the k8s extra is not installed (pip install 'ttg[k8s]')")

from k8s_fixtures import client_on, served_live  # noqa: E402

from ttg_lib.backends import open_inspector  # noqa: E402
from ttg_lib.cluster import check  # noqa: E402
from ttg_lib.cluster.base import ClusterError  # noqa: E402
from ttg_lib.cluster.kubernetes import KubernetesCluster  # noqa: E402
from ttg_lib.config import RunConfig  # noqa: E402

MYMODEL = "def simulate(alpha, beta):\n    return alpha * beta\n"


@pytest.fixture
def live():
    yield from served_live()


@pytest.fixture
def live_api(live):
    yield from client_on(live)


def cluster_for(live, api, config: RunConfig, **kwargs) -> KubernetesCluster:
    cluster = KubernetesCluster.for_run(config, api_client=api, poll_s=0.05, watch_timeout_s=1,
                                        host_ports={"redis": live.node_ports[30379]}, **kwargs)
    cluster.preflight_timeout_s = 60
    return cluster


def test_check_entry_answers_in_one_json_line(tmp_path, monkeypatch, capsys):
    assert check.main(["ttg_lib.compute:placeholder"]) == 0
    assert '"ok": true' in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # nothing named nosuchmodel here either
    assert check.main(["nosuchmodel:simulate"]) == 1
    answer = capsys.readouterr().out
    assert '"ok": false' in answer and "nosuchmodel" in answer and '"python": "' in answer


@pytest.fixture
def run_cluster(live, live_api, monkeypatch):
    """A run makes its cluster itself, from its own config (by value: with the function's
    fingerprint); here that cluster talks to the stand-in."""
    made = KubernetesCluster.for_run
    clusters: list[KubernetesCluster] = []

    def for_run(config, **kwargs):
        cluster = made(config, api_client=live_api, poll_s=0.05, watch_timeout_s=1,
                       host_ports={"redis": live.node_ports[30379]}, **kwargs)
        cluster.preflight_timeout_s = 60
        clusters.append(cluster)
        return cluster

    monkeypatch.setattr(KubernetesCluster, "for_run", for_run)
    return clusters


def test_a_dependency_the_pods_lack_stops_the_run_before_publishing(
        live, run_cluster, tmp_path, monkeypatch):
    """depmodel.py needs a module only the orchestrator's host has (a dependency missing from
    the image). The run stops at the preflight with the pod's own error; no task was
    published, none dead-lettered, and no worker Deployment was applied."""
    from ttg_lib.run import Run

    host_only = tmp_path / "site"
    host_only.mkdir()
    (host_only / "hostonlydep.py").write_text("FACTOR = 3\n")
    (tmp_path / "depmodel.py").write_text(
        "import hostonlydep\n\n\ndef simulate(alpha, beta):\n"
        "    return alpha * beta * hostonlydep.FACTOR\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(host_only))
    config = RunConfig.build(cluster="kind", backend="redis", workers=2,
                             space={"axes": {"alpha": [1, 2, 3], "beta": [10, 20]}},
                             compute="depmodel:simulate", run_id="20250101-000000-redis-pre1",
                             output_dir=str(tmp_path / "out"))
    started = time.monotonic()
    with Run(config) as run, pytest.raises(ClusterError) as err:
        run.start()
    message = str(err.value)
    assert "the worker image cannot load depmodel:simulate" in message
    assert "No module named 'hostonlydep'" in message  # the pod's own error
    assert "Python 3." in message and "before anything was published" in message
    assert time.monotonic() - started < 60
    assert live.get("deployments", "ttg", "ttg-worker") is None  # no worker ever started
    assert not [n for n in live.names("pods", "ttg") if "preflight" in n]  # cleaned up
    (cluster,) = run_cluster
    broker = open_inspector("redis", cluster.broker_url_for("redis"))
    broker.connect()
    try:
        stats = broker.stats()
        assert stats.tasks.ready == 0 and stats.dlq.ready == 0, stats.to_dict()
        assert broker.read_dead_letters() == []
    finally:
        broker.close()
        cluster.stop(timeout=1)


def test_a_loadable_function_passes_the_preflight_and_the_pod_goes(live, live_api, tmp_path):
    config = RunConfig.build(cluster="kind", backend="redis", workers=1,
                             run_id="20250101-000000-redis-pre2", output_dir=str(tmp_path))
    cluster = cluster_for(live, live_api, config)
    try:
        cluster.ensure_brokers(timeout=30)
        cluster.start_workers(1)
        cluster.wait_ready(1, timeout=30)
    finally:
        cluster.stop(timeout=2)
    (checked,) = [e for e in cluster.events() if e["event"] == "checked"]
    assert "loads ttg_lib.compute:placeholder (Python 3." in checked["detail"]
    created = [r for r in live.calls("POST") if r.path.endswith("/pods")]
    assert len(created) == 1 and created[0].body["spec"]["restartPolicy"] == "Never"
    assert created[0].body["spec"]["containers"][0]["command"][-1] == (
        "ttg_lib.compute:placeholder")
    assert not [n for n in live.names("pods", "ttg") if "preflight" in n]


def test_a_module_only_the_orchestrator_has_runs_on_the_pods(live, run_cluster, tmp_path,
                                                             monkeypatch):
    """mymodel.py exists only in the orchestrator's working directory, not in the workers'
    image or path: TTG ships it by value, the preflight pod loads it from the broker, and the
    run on the stand-in's pods verifies every point; nothing is dead-lettered."""
    from ttg_lib.run import Run

    (tmp_path / "mymodel.py").write_text(MYMODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = RunConfig.build(cluster="kind", backend="redis", workers=2,
                             space={"axes": {"alpha": [1, 2, 3], "beta": [10, 20]}},
                             compute="mymodel:simulate", verify="full",
                             run_id="20250101-000000-redis-pre3",
                             output_dir=str(tmp_path / "out"))
    with Run(config) as run:
        run.start()
        deadline = time.monotonic() + 90
        while not run.done and time.monotonic() < deadline:
            run.step(0.1)
        summary = run.finish()
    assert summary["ok"], summary["problems"]
    assert summary["lost_params"] == 0 and summary["wrong_results"] == 0
    assert summary["dlq_count"] == 0
    (checked,) = [e for e in run.cluster.events() if e["event"] == "checked"]
    assert "sha256:" in checked["detail"]  # the pod loaded the function shipped by value

"""Kind provisioning through the ``kind`` and ``docker`` CLIs.

Creates (or reuses) the Kind cluster ``ttg`` from kind/kind-config.yaml, builds the worker
image ``ttg-worker:dev`` from the Dockerfile (BuildKit through buildx, without provenance or
SBOM attestations: with Docker's containerd image store, the default on fresh installs and
Docker Desktop, an attestation makes ``kind load`` fail with "content digest ... not found",
kind#3795), side-loads it into the nodes, and deploys the brokers through
:class:`~ttg_lib.cluster.kubernetes.KubernetesCluster` (the API client, not kubectl). A missing
tool, or a kind release TTG has no node image for (:data:`KIND_NODE_IMAGES`), is a
:class:`ClusterError` naming it and how to fix it. ``up --requirements FILE --code DIR`` also
builds and loads a worker image of the user's own (:mod:`.userimage`).

Only the cluster named ``ttg`` is ever deleted, and only when TTG created it: ``create_cluster``
writes a marker holding the control-plane container's id, ``delete_cluster`` compares it.

    python -m ttg_lib.cluster.kind status|up|down|credentials|delete-cluster [--backend redis]
    python -m ttg_lib.cluster.kind up --requirements requirements.txt --code .
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...backends import DEFAULT_BACKEND, backend_names
from ..base import ClusterError
from ..kindnodes import (
    KIND_NODE_IMAGES,
    KIND_VERSION,  # noqa: F401 (re-exported: kind-e2e.sh, tests)
    NODE_IMAGE_ENV,
    cluster_config,
    node_image,
    version_of,
)

CLUSTER_NAME = "ttg"
CONTEXT = f"kind-{CLUSTER_NAME}"
IMAGE = "ttg-worker:dev"
REPO_ROOT = Path(__file__).resolve().parents[3]
KIND_CONFIG = REPO_ROOT / "kind" / "kind-config.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
BOTH = "both"  # every broker at once (the notebooks' choice)
ACTIONS = ("status", "up", "down", "credentials", "delete-cluster")
INSTALL = {
    "docker": ("install Docker Engine (https://docs.docker.com/engine/install/) or Docker "
               "Desktop with the buildx plugin (docker-buildx-plugin), start it, and check that "
               "`docker info` and `docker buildx version` succeed for your user"),
    "kind": (f"install one of kind {', '.join(KIND_NODE_IMAGES)} "
             f"(https://kind.sigs.k8s.io/docs/user/quick-start/#installation), e.g. "
             f"`go install sigs.k8s.io/kind@{max(KIND_NODE_IMAGES)}` or the release binary on "
             f"your PATH; for another release set {NODE_IMAGE_ENV} to the kindest/node:v1.30.x "
             f"image (with its @sha256 digest) its release notes list"),
}


@dataclass
class ToolCheck:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        if self.ok:
            return f"{self.name}: ok ({self.detail})"
        return f"{self.name}: MISSING - {self.detail}. To fix: {INSTALL[self.name]}"


def _probe(args: list[str], timeout: float = 20.0) -> tuple[int, str]:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return 127, f"{args[0]} not found"
    except subprocess.TimeoutExpired:
        return 124, f"`{' '.join(args)}` did not answer within {timeout:.0f}s"
    text = (proc.stdout if proc.returncode == 0 else proc.stderr or proc.stdout).strip()
    return proc.returncode, text.splitlines()[-1] if text else ""


def check_docker() -> ToolCheck:
    if shutil.which("docker") is None:
        return ToolCheck("docker", False, "the docker CLI is not on PATH")
    rc, out = _probe(["docker", "info", "--format", "{{.ServerVersion}}"])
    if rc != 0:
        return ToolCheck("docker", False, f"the docker CLI is installed but `docker info` "
                                          f"failed, so no Docker engine is reachable ({out})")
    engine = out
    rc, out = _probe(["docker", "buildx", "version"])
    if rc != 0:
        return ToolCheck("docker", False, f"engine {engine}, but `docker buildx version` failed "
                                          f"({out}): the Dockerfile needs BuildKit (RUN --mount)")
    return ToolCheck("docker", True, f"engine {engine}, {out}")


def check_kind() -> ToolCheck:
    if shutil.which("kind") is None:
        return ToolCheck("kind", False, "the kind CLI is not on PATH")
    rc, out = _probe(["kind", "version"])
    if rc != 0:
        return ToolCheck("kind", False, f"`kind version` failed ({out})")
    version = version_of(out)
    if version not in KIND_NODE_IMAGES and not os.environ.get(NODE_IMAGE_ENV):
        return ToolCheck("kind", False, f"kind {version or repr(out)} is not a release TTG has "
                                        f"a node image for ({', '.join(KIND_NODE_IMAGES)})")
    return ToolCheck("kind", True, f"{out}; node image {node_image(version)}")


def installed_kind_version() -> str:
    rc, out = _probe(["kind", "version"])
    return version_of(out) if rc == 0 else ""


def check_tools() -> list[ToolCheck]:
    return [check_docker(), check_kind()]


def require(*names: str) -> None:
    """Raise a ClusterError naming every missing tool and how to install it."""
    checks = {"docker": check_docker, "kind": check_kind}
    missing = [c for c in (checks[n]() for n in names) if not c.ok]
    if missing:
        raise ClusterError("Kind provisioning needs " + " and ".join(names) + ":\n  "
                           + "\n  ".join(c.line() for c in missing))


def _run(args: list[str], *, what: str, timeout: float = 600.0,
         env: dict[str, str] | None = None, stream: bool = False) -> str:
    try:
        proc = subprocess.run(args, capture_output=not stream, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ClusterError(f"{what}: `{args[0]}` is not installed. To fix: "
                           f"{INSTALL.get(args[0], 'install it')}") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{what}: `{' '.join(args)}` took longer than {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-15:])
        raise ClusterError(f"{what} failed (exit code {proc.returncode}): "
                           f"`{' '.join(args)}`\n{tail}")
    return proc.stdout or ""


# -- the cluster -------------------------------------------------------------------
def state_dir() -> Path:
    return Path(os.environ.get("TTG_STATE_DIR") or Path.home() / ".cache" / "ttg")


def _marker() -> Path:
    return state_dir() / f"kind-{CLUSTER_NAME}.json"


def _control_plane_id() -> str:
    out = _run(["docker", "inspect", "--format", "{{.Id}}", f"{CLUSTER_NAME}-control-plane"],
               what="identify the Kind control-plane container", timeout=60)
    return out.strip()


def cluster_exists() -> bool:
    require("docker", "kind")
    out = _run(["kind", "get", "clusters"], what="list Kind clusters", timeout=60)
    return CLUSTER_NAME in out.split()


def create_cluster(config: Path = KIND_CONFIG, wait: str = "180s") -> str:
    """Create the Kind cluster ``ttg`` (1 control plane + 3 workers) or reuse it."""
    require("docker", "kind")
    if cluster_exists():
        return f"Kind cluster {CLUSTER_NAME!r} exists: reused (context {CONTEXT})"
    version = installed_kind_version()
    written = state_dir() / f"kind-config-{version or 'unknown'}.yaml"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(cluster_config(version, config))
    _run(["kind", "create", "cluster", "--name", CLUSTER_NAME, "--config", str(written),
          "--wait", wait], what=f"create Kind cluster {CLUSTER_NAME!r}", timeout=900)
    marker = _marker()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"cluster": CLUSTER_NAME, "created_at": time.time(),
                                  "control_plane_id": _control_plane_id()}))
    return f"Kind cluster {CLUSTER_NAME!r} created (context {CONTEXT})"


def created_by_ttg() -> bool:
    try:
        marker = json.loads(_marker().read_text())
    except (OSError, ValueError):
        return False
    try:
        return marker.get("control_plane_id") == _control_plane_id()
    except ClusterError:
        return False


def delete_cluster(force: bool = False) -> str:
    """Delete the Kind cluster ``ttg`` if TTG created it (``force`` skips that check)."""
    require("docker", "kind")
    if not cluster_exists():
        return f"Kind cluster {CLUSTER_NAME!r} does not exist: nothing to delete"
    if not force and not created_by_ttg():
        raise ClusterError(f"Kind cluster {CLUSTER_NAME!r} was not created by TTG on this "
                           f"machine (no matching marker {_marker()}); not deleting it. "
                           f"If it is yours to delete: kind delete cluster --name "
                           f"{CLUSTER_NAME}")
    _run(["kind", "delete", "cluster", "--name", CLUSTER_NAME],
         what=f"delete Kind cluster {CLUSTER_NAME!r}", timeout=300)
    _marker().unlink(missing_ok=True)
    return f"Kind cluster {CLUSTER_NAME!r} deleted"


BUILD_ARGS = ["docker", "buildx", "build", "--load", "--provenance=false", "--sbom=false"]


def build_image(tag: str = IMAGE) -> str:
    """Build with BuildKit and no attestations, so the image loads into Kind with either of
    Docker's image stores (classic or containerd)."""
    require("docker")
    _run([*BUILD_ARGS, "-t", tag, "-f", str(DOCKERFILE), str(REPO_ROOT)],
         what=f"build the worker image {tag}", timeout=1800)
    return f"image {tag} built from {DOCKERFILE.name} (no provenance/SBOM attestations)"


def build_user_image(requirements: Path | None, code: Path | None) -> tuple[str, str]:
    """Build ``ttg-worker:user-<hash>`` FROM the base with the user's requirements and code
    (:mod:`.userimage`); returns (tag, what was done). An unchanged content keeps its tag."""
    from ..userimage import UserImage

    require("docker")
    image = UserImage(IMAGE, requirements, code)
    base_id = _run(["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE],
                   what=f"read the id of {IMAGE}", timeout=60).strip()
    tag = image.tag(base_id)
    context = image.write_context(state_dir() / "user-image" / tag.split(":", 1)[1])
    _run(image.build_command(tag, context, BUILD_ARGS), what=f"build the worker image {tag}",
         timeout=1800)
    return tag, f"image {tag} built from {IMAGE} with " + " and ".join(
        part for part, given in (("requirements", requirements), ("code", code)) if given)


def worker_image_line(tag: str) -> str:
    """What `up` prints about the user's image (scripts/kind-e2e.sh reads the tag from it)."""
    return f"worker image: {tag} (ttg run --cluster kind --image {tag} ...)"


def load_image(tag: str = IMAGE) -> str:
    require("docker", "kind")
    _run(["kind", "load", "docker-image", tag, "--name", CLUSTER_NAME],
         what=f"load {tag} into Kind cluster {CLUSTER_NAME!r}", timeout=600)
    return f"image {tag} loaded into the nodes of {CLUSTER_NAME!r}"


# -- notebook actions ----------------------------------------------------------------
def _provider(backend: str) -> Any:
    from ..kubernetes import KubernetesCluster

    return KubernetesCluster(flavor="kind", backend=backend, run_id="provision",
                             context=CONTEXT, poll_s=2.0)


def _health_lines(backend: str) -> list[str]:
    health = _provider(backend).health()
    lines = [f"nodes ({len(health['nodes'])}):"]
    lines += [f"  {n['node']:<24} {n['roles']:<14} ready={n['ready']} {n['kubelet']}"
              for n in health["nodes"]]
    lines.append(f"TTG pods in namespace ttg ({len(health['pods'])}):")
    lines += [f"  {p['pod']:<36} {p['component'] or '':<8} node={p['node']} "
              f"phase={p['phase']} ready={p['ready']} restarts={p['restarts']} {p['reason']}"
              for p in health["pods"]]
    return lines


def status(backend: str = DEFAULT_BACKEND) -> list[str]:
    """Tools, cluster, nodes and TTG pods; never raises (a missing tool is a message)."""
    checks = check_tools()
    lines = [c.line() for c in checks]
    if not all(c.ok for c in checks):
        missing = " and ".join(c.name for c in checks if not c.ok)
        lines.append(f"Kind cluster {CLUSTER_NAME!r}: cannot check, {missing} missing "
                     f"(see above). Nothing was changed.")
        return lines
    try:
        if not cluster_exists():
            lines.append(f"Kind cluster {CLUSTER_NAME!r}: not created yet "
                         f"(run this notebook with action='up')")
            return lines
        lines.append(f"Kind cluster {CLUSTER_NAME!r}: exists (context {CONTEXT}, "
                     f"{'created by TTG' if created_by_ttg() else 'not created by TTG'})")
        lines += _health_lines(backend)
    except ClusterError as exc:
        lines.append(f"error: {exc}")
    return lines


def up(backend: str = DEFAULT_BACKEND, build: bool = True, timeout: float = 600.0,
       requirements: Path | None = None, code: Path | None = None) -> list[str]:
    """Create or reuse the cluster, build and load the image (and the user's image on top of
    it, given requirements or code), deploy the brokers."""
    require("docker", "kind")
    lines = [create_cluster()]
    if build:
        lines.append(build_image())
        lines.append(load_image())
    if requirements is not None or code is not None:
        tag, built = build_user_image(requirements, code)
        lines += [built, load_image(tag), worker_image_line(tag)]
    backends = _chosen(backend)
    provider = _provider(backends[0])
    provider.ensure_brokers(timeout)
    if len(backends) > 1:
        provider.wait_brokers(timeout, backends)
    lines.append("brokers ready: " + ", ".join(backends) + " (host URLs with the generated "
                 "credentials: python -m ttg_lib.cluster.kind credentials)")
    provider.release_brokers()  # the management URL it pointed this process at
    lines += _health_lines(backends[0])
    return lines


def credentials() -> list[str]:
    """The broker credentials TTG generated for this cluster, and the host URLs using them."""
    require("docker", "kind")
    provider = _provider(DEFAULT_BACKEND)
    values = provider.credentials()
    lines = ["Secret ttg/ttg-broker-credentials (generated at the first deploy, kept across "
             "runs; never written to the repository or a run record):"]
    lines += [f"  {k}={v}" for k, v in sorted(values.items())]
    lines += [f"  host URL ({b}): {provider.broker_url_for(b)}" for b in _chosen(BOTH)]
    return lines


def down(run_id: str | None = None, dry_run: bool = False) -> list[str]:
    """Delete TTG-labelled objects in namespace ttg of the Kind cluster (cluster stays)."""
    from ...cleanup_report import CleanupReport
    from ..kubernetes import cleanup_kubernetes

    report = CleanupReport(dry_run=dry_run)
    cleanup_kubernetes(run_id=run_id, dry_run=dry_run, report=report, context=CONTEXT)
    return report.lines()


def _chosen(backend: str) -> tuple[str, ...]:
    """The brokers an action is about: one, or every runnable broker for ``both``."""
    return backend_names(runnable=True) if backend == BOTH else (backend,)


def provision(action: str = "status", backend: str = DEFAULT_BACKEND, build: bool = True,
              timeout: float = 600.0, force: bool = False, requirements: Path | None = None,
              code: Path | None = None) -> list[str]:
    """One entry point for notebooks/provision.ipynb and ``python -m ttg_lib.cluster.kind``."""
    if action not in ACTIONS:
        raise ClusterError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    allowed = (*backend_names(runnable=True), BOTH)
    if backend not in allowed:
        raise ClusterError(f"unknown backend {backend!r}: one of {', '.join(allowed)}")
    if action != "up" and (requirements is not None or code is not None):
        raise ClusterError(f"--requirements and --code belong to `up`, not `{action}`")
    if action == "status":
        return status(_chosen(backend)[0])
    if action == "up":
        return up(backend, build=build, timeout=timeout, requirements=requirements, code=code)
    if action == "down":
        return down()
    if action == "credentials":
        return credentials()
    return [delete_cluster(force=force)]

"""Kind for a real user (issue 21): a table of kind releases and their node images, so a
newer kind works; and `python -m ttg_lib.cluster.kind up --requirements FILE --code DIR`,
which builds a worker image of the user's own tagged by a hash of its content. No Docker
engine here: the generated build context, the tag and the docker/kind command lines are
tested, with stand-in `docker` and `kind` executables."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from ttg_lib.cluster import kind as ttg_kind
from ttg_lib.cluster.base import ClusterError
from ttg_lib.cluster.userimage import CODE_DIR, UserImage

BASE = "ttg-worker:dev"


def fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "mymodel.py").write_text("import scipy\n\ndef simulate(a, b):\n    return a * b\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "mymodel.cpython-311.pyc").write_bytes(b"\x00compiled")
    (root / "requirements.txt").write_text("scipy==1.14.1\n")
    return root


# -- the user's image ----------------------------------------------------------------------
def test_the_tag_is_a_hash_of_the_content(project: Path):
    image = UserImage(BASE, project / "requirements.txt", project)
    tag = image.tag("sha256:base1")
    assert re.fullmatch(r"ttg-worker:user-[0-9a-f]{12}", tag)
    assert UserImage(BASE, project / "requirements.txt", project).tag("sha256:base1") == tag
    (project / "__pycache__" / "other.pyc").write_bytes(b"x")  # caches are not content
    assert image.tag("sha256:base1") == tag
    assert image.tag("sha256:base2") != tag  # a rebuilt base: the user's image is rebuilt too
    (project / "requirements.txt").write_text("scipy==1.14.2\n")
    changed_requirements = image.tag("sha256:base1")
    assert changed_requirements != tag
    (project / "mymodel.py").write_text("def simulate(a, b):\n    return a + b\n")
    assert image.tag("sha256:base1") not in (tag, changed_requirements)
    assert UserImage(BASE, project / "requirements.txt").tag() != UserImage(
        BASE, None, project).tag()


def test_the_build_context_holds_the_dockerfile_requirements_and_code(project, tmp_path):
    image = UserImage(BASE, project / "requirements.txt", project)
    context = image.write_context(tmp_path / "context")
    dockerfile = (context / "Dockerfile").read_text().splitlines()
    assert dockerfile[2:] == [
        f"FROM {BASE}", "USER root",
        "COPY requirements.txt /tmp/ttg-requirements.txt",
        "RUN pip install --no-cache-dir -r /tmp/ttg-requirements.txt "
        "&& rm /tmp/ttg-requirements.txt",
        f"COPY code/ {CODE_DIR}/", f"RUN python -m compileall -q {CODE_DIR}",
        f"ENV PYTHONPATH={CODE_DIR}", "USER 10001:10001"]
    assert (context / "requirements.txt").read_text() == "scipy==1.14.1\n"
    copied = sorted(p.relative_to(context / "code").as_posix()
                    for p in (context / "code").rglob("*") if p.is_file())
    assert copied == ["mymodel.py", "pkg/__init__.py", "requirements.txt"]
    only_requirements = UserImage(BASE, project / "requirements.txt").dockerfile()
    assert "COPY code/" not in only_requirements and "USER 10001:10001" in only_requirements


def test_bad_inputs_are_one_clear_error(project, tmp_path):
    with pytest.raises(ClusterError, match="give --requirements FILE and/or --code DIR"):
        UserImage(BASE).write_context(tmp_path / "c1")
    with pytest.raises(ClusterError, match="no such file"):
        UserImage(BASE, tmp_path / "missing.txt").write_context(tmp_path / "c2")
    with pytest.raises(ClusterError, match="not a folder"):
        UserImage(BASE, None, project / "mymodel.py").files()


def test_up_builds_and_loads_the_users_image_with_the_kind_flags(project, tmp_path, monkeypatch):
    """The same buildx flags as the base image (no attestations: kind#3795), then `kind load`
    of the hashed tag, and the tag to pass as --image."""
    log = tmp_path / "calls.log"
    tools = tmp_path / "bin"
    tools.mkdir()
    fake_tool(tools, "docker", f'echo "docker $*" >> {log}\n'
                               'case "$1" in info) echo 27.0.3;; image) echo sha256:base1;; esac')
    fake_tool(tools, "kind", f'echo "kind $*" >> {log}\n'
                             'case "$1" in version) echo kind v0.24.0;; esac')
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("TTG_STATE_DIR", str(tmp_path / "state"))
    tag, done = ttg_kind.build_user_image(project / "requirements.txt", project)
    assert tag == UserImage(BASE, project / "requirements.txt", project).tag("sha256:base1")
    assert "requirements and code" in done
    ttg_kind.load_image(tag)
    calls = log.read_text()
    context = tmp_path / "state" / "user-image" / tag.split(":", 1)[1]
    assert (f"docker buildx build --load --provenance=false --sbom=false -t {tag} "
            f"-f {context}/Dockerfile {context}") in calls
    assert f"kind load docker-image {tag} --name ttg" in calls
    assert (context / "code" / "mymodel.py").exists()


# -- kind releases and their node images ------------------------------------------------------
def test_every_kind_release_in_the_table_has_a_pinned_1_30_node_image():
    for version, image in ttg_kind.KIND_NODE_IMAGES.items():
        assert re.fullmatch(r"v0\.\d+\.\d+", version)
        assert re.fullmatch(r"kindest/node:v1\.30\.\d+@sha256:[0-9a-f]{64}", image), image
    assert len(set(ttg_kind.KIND_NODE_IMAGES.values())) == len(ttg_kind.KIND_NODE_IMAGES)


@pytest.mark.parametrize("version", ["v0.24.0", "v0.27.0", "v0.29.0"])
def test_a_newer_kind_in_the_table_is_accepted_and_gets_its_image(version, tmp_path,
                                                                  monkeypatch):
    monkeypatch.delenv(ttg_kind.NODE_IMAGE_ENV, raising=False)
    fake_tool(tmp_path, "kind", f'echo "kind {version} go1.22.9 linux/amd64"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    check = ttg_kind.check_kind()
    assert check.ok, check.line()
    config = ttg_kind.cluster_config(version)
    images = re.findall(r"^\s+image: (\S+)$", config, flags=re.MULTILINE)
    assert images == [ttg_kind.KIND_NODE_IMAGES[version]] * 4  # 1 control plane, 3 workers
    assert "hostPort: 30379" in config and "podSubnet: 10.244.0.0/16" in config


def test_another_kind_works_with_its_node_image_named(tmp_path, monkeypatch):
    fake_tool(tmp_path, "kind", 'echo "kind v0.31.0 go1.25.1 linux/amd64"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv(ttg_kind.NODE_IMAGE_ENV, raising=False)
    assert not ttg_kind.check_kind().ok
    image = "kindest/node:v1.30.99@sha256:" + "0" * 64
    monkeypatch.setenv(ttg_kind.NODE_IMAGE_ENV, image)
    assert ttg_kind.check_kind().ok
    assert ttg_kind.cluster_config("v0.31.0").count(f"image: {image}") == 4


def test_requirements_belong_to_up(project):
    with pytest.raises(ClusterError, match="belong to `up`, not `status`"):
        ttg_kind.provision("status", requirements=project / "requirements.txt")

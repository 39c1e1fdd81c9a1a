"""kind releases and the Kubernetes node image each one published, so that a newer kind works:
the cluster is created with the image of the kind that is installed."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO_ROOT / "kind" / "kind-config.yaml"

# kind only promises the node images of its own release, so each kind release gets the
# Kubernetes 1.30 node image published with it, by digest (from its release notes; TTG's
# manifests are validated against 1.30). kind/kind-config.yaml holds v0.24.0's; create_cluster
# writes the config with the image of the kind that is installed.
KIND_NODE_IMAGES = {
    "v0.24.0": "kindest/node:v1.30.4@sha256:"
               "976ea815844d5fa93be213437e3ff5754cd599b040946b5cca43ca45c2047114",
    "v0.25.0": "kindest/node:v1.30.6@sha256:"
               "b6d08db72079ba5ae1f4a88a09025c0a904af3b52387643c285442afb05ab994",
    "v0.26.0": "kindest/node:v1.30.8@sha256:"
               "17cd608b3971338d9180b00776cb766c50d0a0b6b904ab4ff52fd3fc5c6369bf",
    "v0.27.0": "kindest/node:v1.30.10@sha256:"
               "4de75d0e82481ea846c0ed1de86328d821c1e6a6a91ac37bf804e5313670e507",
    "v0.29.0": "kindest/node:v1.30.13@sha256:"
               "397209b3d947d154f6641f2d0ce8d473732bd91c87d9575ade99049aa33cd648",
}
KIND_VERSION = "v0.24.0"  # the release kind/kind-config.yaml is written for (and the oldest)
NODE_IMAGE_ENV = "TTG_KIND_NODE_IMAGE"  # another kind: its 1.30 image from its release notes


def node_image(version: str) -> str:
    """The node image for this kind release: TTG_KIND_NODE_IMAGE, else the table's."""
    return os.environ.get(NODE_IMAGE_ENV) or KIND_NODE_IMAGES.get(version, KIND_NODE_IMAGES[
        KIND_VERSION])


def version_of(out: str) -> str:
    """The v0.x.y in `kind version`'s output ("" when absent)."""
    return next((w for w in out.split() if w.startswith("v0.")), "")


def cluster_config(version: str, template: Path = KIND_CONFIG) -> str:
    """kind/kind-config.yaml with every node on this kind release's node image."""
    image = node_image(version)
    lines = []
    for line in template.read_text().splitlines():
        head, sep, _ = line.partition("image: kindest/node:")
        lines.append(f"{head}image: {image}" if sep and not head.strip() else line)
    return "\n".join(lines) + "\n"

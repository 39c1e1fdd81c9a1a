"""What the notebooks show of the cluster: its nodes and TTG's pods."""

from __future__ import annotations

from typing import Any

from .labels import COMPONENT, RUN_LABEL, TTG_SELECTOR
from .pods import pod_ready, pod_reason, restart_count


class Inventory:
    """Mixed into :class:`~.provider.KubernetesCluster`."""

    api: Any

    def nodes(self) -> list[dict[str, Any]]:
        listing = self.api.call("list Node", self.api.core.list_node) or {}
        rows = []
        for node in listing.get("items") or []:
            labels = node["metadata"].get("labels") or {}
            roles = [k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes")]
            conditions = (node.get("status") or {}).get("conditions") or []
            rows.append({"node": node["metadata"]["name"],
                         "roles": ",".join(roles) or "worker",
                         "ready": any(c.get("type") == "Ready" and c.get("status") == "True"
                                      for c in conditions),
                         "kubelet": ((node.get("status") or {}).get("nodeInfo") or {})
                         .get("kubeletVersion")})
        return rows

    def pods(self) -> list[dict[str, Any]]:
        rows = []
        for pod in self.api.list("Pod", TTG_SELECTOR):
            labels = pod["metadata"].get("labels") or {}
            rows.append({"pod": pod["metadata"]["name"],
                         "component": labels.get(COMPONENT),
                         "run_id": labels.get(RUN_LABEL),
                         "node": (pod.get("spec") or {}).get("nodeName"),
                         "phase": (pod.get("status") or {}).get("phase"),
                         "ready": pod_ready(pod), "restarts": restart_count(pod),
                         "reason": "" if pod_ready(pod) else pod_reason(pod)})
        return rows

    def health(self) -> dict[str, list[dict[str, Any]]]:
        return {"nodes": self.nodes(), "pods": self.pods()}

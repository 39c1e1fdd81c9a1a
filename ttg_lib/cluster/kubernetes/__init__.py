"""Workers as pods: the Kubernetes cluster provider (Kind, or any kubeconfig context).

Every API operation goes through the official ``kubernetes`` Python client (no kubectl).
The objects come from the plain YAML under ``k8s/base`` (plus ``k8s/overlays/kind`` on Kind),
loaded in the order their kustomization lists them; TTG then sets the run's values:

* the worker ConfigMap's ``TTG_BACKEND``, ``TTG_RUN_ID`` and ``TTG_LEASE_S`` (it also carries
  ``TTG_LIVENESS_S``, the probes' limit, and ``TTG_KILL_ON_SIGTERM=1``: a deleted worker pod ends
  at the kubelet's SIGTERM at once, which makes :meth:`KubernetesCluster.kill_worker` a hard
  kill),
* the worker Deployment's replicas, image (``ttg-worker:dev`` on Kind, ``--image`` elsewhere),
  pull policy and resources (:mod:`ttg_lib.cluster.podsettings`) and the label
  ``ttg.dev/run-id`` on the Deployment, its pod template and the ConfigMap.
  (``app.kubernetes.io/instance`` stays ``ttg``: it is part of the Deployment's immutable
  selector and of the brokers' Service and NetworkPolicy selectors.)

Safety rules, enforced here and checked by tests/test_kubernetes_provider.py:

* only objects in namespace ``ttg`` labelled ``app.kubernetes.io/part-of=ttg`` are applied
  (server-side apply, field manager ``ttg``); an existing object of the same name without that
  label is never modified;
* every list and every delete carries the label selector ``app.kubernetes.io/part-of=ttg``
  (deletes are delete-collection calls with that selector; killing one pod adds a field
  selector on its name, so exactly that pod goes);
* the Secret (broker credentials, random passwords generated when it is absent; nothing in the
  repository holds one) and the PersistentVolumeClaim are created when absent and otherwise left
  alone, so credentials and stored data survive a new run.

Reaching the brokers from the host (the run's own backend connection): on Kind through the
NodePorts that kind/kind-config.yaml publishes on 127.0.0.1 (30379 Redis, 30672 AMQP, 31672
RabbitMQ management); on another cluster through port-forwards made with the client's websocket
support. Inside a pod without a kubeconfig the client uses the pod's ServiceAccount (k8s/rbac).

Modules, one concept each:

* :mod:`.labels` - names, labels, the broker/kind tables and the label selectors;
* :mod:`.manifests` - loading the YAML, checking it is TTG's, setting the run's values;
* :mod:`.credentials` - the generated broker credentials Secret;
* :mod:`.pods` - pod and workload status as TTG reports it;
* :mod:`.api` - kubeconfig context (or in-cluster config) and client construction, the
  :class:`Api` wrapper, create-or-apply;
* :mod:`.portforward` - host port relayed to a broker pod (clusters other than Kind), the pod
  picked again when it was replaced;
* :mod:`.brokers` - the brokers' side of the provider (apply, wait, host URLs);
* :mod:`.brokerprobe` - the host's own broker connection (does it answer, who holds chunks);
* :mod:`.watch` - the watch cache of the run's worker pods (re-list on 410 or repeated errors);
* :mod:`.inventory` - nodes and TTG's pods, for the notebooks;
* :mod:`.provider` - :class:`KubernetesCluster`, the :class:`~ttg_lib.cluster.base.Cluster`;
* :mod:`.preflight` - one pod loads the run's function before anything is published;
* :mod:`.plan` - the dry-run plan (``ttg run --dry-run``);
* :mod:`.cleanup` - deleting TTG-labelled objects (``ttg cleanup --kubernetes``).
"""

from __future__ import annotations

from .cleanup import CLEANUP_KINDS, cleanup_kubernetes
from .labels import NAMESPACE, TTG_SELECTOR
from .plan import dry_run_plan, format_plan
from .provider import KubernetesCluster

# What the rest of TTG uses; everything else is reached through its own module.
__all__ = ["CLEANUP_KINDS", "NAMESPACE", "TTG_SELECTOR", "KubernetesCluster",
           "cleanup_kubernetes", "dry_run_plan", "format_plan"]

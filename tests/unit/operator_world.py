"""A pure, in-memory stand-in for Kubernetes and EMQX around the operator's decide(), for unit tests.

`Cluster` holds the resource, its owned objects, pods and what EMQX reports, and plays the
controllers just enough for decide() to be driven pass after pass without a real cluster: the
StatefulSet controller (OnDelete: missing ordinals are created from the update revision), the
Deployment controller (surge one new pod, remove the next old one once a new one is available),
the kubelet (pods run at once, unless their image is unknown: ErrImagePull), and EMQX (a Ready pod
is a running node of its image's version; evacuations drain at once). Integration tests run the
real thing; these keep every decision fast and table-driven.
"""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from emqx_operator.cluster_api import object_hash
from emqx_operator.decide import decide, settle
from emqx_operator.model import (
    CallError,
    ConfigPut,
    EmqxCall,
    EmqxError,
    EmqxView,
    EvacuationStart,
    EvacuationStop,
    ForceLeave,
    Outcome,
    Plan,
    RebalanceStart,
    RebalanceStop,
    World,
)

from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.domain import versions
from kubectl_emqx.domain.builders import SecretValues
from kubectl_emqx.domain.vocabulary import (
    ANNOTATION_APPLIED_HASH,
    ANNOTATION_DELETION_COST,
    CORE,
    LABEL_DB_ROLE,
    LABEL_REVISION,
    core_node_name,
    format_time,
)

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)
FRESH = SecretValues("cookie-0123", "kubectl-emqx-operator", "operator-secret", "dashboard-pw")
BAD_TAGS = ("5.7.9", "9.9.9")  # images the registry does not have


@dataclass
class Cluster:
    image: str = "emqx/emqx-enterprise:5.7.2"
    cores: int = 3
    replicants: int = 3
    config: str = ""
    name: str = "demo"
    namespace: str = "ns"
    extra_spec: dict[str, Any] = field(default_factory=dict)
    now: datetime.datetime = NOW
    body: dict[str, Any] = field(init=False)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    referenced: dict[tuple[str, str], str | None] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)  # node -> connections
    evacuations: dict[str, str] = field(default_factory=dict)  # node -> state
    stopped_cores: list[str] = field(default_factory=list)  # departed nodes EMQX still lists
    rebalances: list[dict[str, Any]] = field(default_factory=list)  # global_status rebalances[]
    uptime_ms: dict[str, int] = field(default_factory=dict)  # node -> uptime EMQX reports (default 1 h)
    emqx_error: EmqxError | None = None
    failures: dict[type, CallError] = field(default_factory=dict)  # EMQX call type -> its answer
    calls: list[EmqxCall] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    crash: set[str] = field(default_factory=set)  # pods whose container crash-loops
    not_ready: set[str] = field(default_factory=set)  # pods that run but never turn Ready
    fresh: SecretValues = FRESH  # the random values a pass would generate
    address: str = "http://10.0.0.1:18083"  # the core whose API answered this pass
    _counter: int = 0

    def __post_init__(self) -> None:
        spec: dict[str, Any] = {"image": self.image, "coreTemplate": {"spec": {"replicas": self.cores}},
                                "replicantTemplate": {"spec": {"replicas": self.replicants}}}
        if self.config:
            spec["config"] = {"data": self.config}
        spec.update(copy.deepcopy(self.extra_spec))
        self.body = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX",
                     "metadata": {"name": self.name, "namespace": self.namespace, "uid": "cr-uid", "generation": 1},
                     "spec": spec, "status": {}}

    # --- the inputs of decide ------------------------------------------------------------------------

    @property
    def spec(self) -> spec_mod.EmqxSpec:
        return spec_mod.normalize(self.body, self.namespace)

    @property
    def status(self) -> dict[str, Any]:
        return self.body.setdefault("status", {})

    def world(self) -> World:
        pods = [p for p in self.pods.values()]
        core = tuple(sorted((p for p in pods if p["metadata"]["labels"][LABEL_DB_ROLE] == CORE),
                            key=lambda p: int(p["metadata"]["name"].rsplit("-", 1)[1])))
        replicant = tuple(sorted((p for p in pods if p["metadata"]["labels"][LABEL_DB_ROLE] != CORE),
                                 key=lambda p: p["metadata"]["name"]))
        return World(self.body, dict(self.objects), core, replicant, dict(self.secrets), dict(self.referenced))

    def node(self, pod: dict[str, Any]) -> str:
        if pod["metadata"]["labels"][LABEL_DB_ROLE] == CORE:
            return core_node_name(self.name, self.namespace, "cluster.local", pod["metadata"]["name"])
        return f"emqx@{pod['status'].get('podIP')}"

    def view(self) -> EmqxView:
        if self.emqx_error is not None:
            return EmqxView(error=self.emqx_error, address=self.address)
        nodes = []
        for pod in self.pods.values():
            if not _ready(pod) and not _containers_ready(pod):
                continue
            info = versions.parse_image(_image(pod))
            node = self.node(pod)
            nodes.append({"node": node, "node_status": "running",
                          "role": pod["metadata"]["labels"][LABEL_DB_ROLE],
                          "version": versions.format_version(info.version), "edition": info.edition,
                          "connections": self.connections.get(node, 0),
                          "uptime": self.uptime_ms.get(node, 3_600_000)})
        nodes += [{"node": node, "node_status": "stopped", "role": "core"} for node in self.stopped_cores]
        if not any(n["node_status"] == "running" and n["role"] == CORE for n in nodes):
            return EmqxView()
        evacuations = {n: s for n, s in self.evacuations.items() if any(x["node"] == n for x in nodes)}
        return EmqxView(nodes=tuple(sorted(nodes, key=lambda n: n["node"])), address=self.address,
                        evacuations=evacuations, rebalances=tuple(copy.deepcopy(self.rebalances)))

    # --- passes --------------------------------------------------------------------------------------

    def decide(self) -> Plan:
        return decide(self.spec, self.world(), self.view(), copy.deepcopy(self.status), self.now, self.fresh)

    def step(self, seconds: float = 1.0) -> Plan:
        """One pass: decide, carry the plan out as Kubernetes and EMQX would, write status; then
        let the controllers and the kubelet react, and the clock move on."""
        plan = self.decide()
        outcome = self.carry_out(plan)
        status, _events = settle(plan, outcome, copy.deepcopy(self.status), self.now)
        self.body["status"] = json.loads(json.dumps(status))
        self.controllers()
        self.now += datetime.timedelta(seconds=seconds)
        return plan

    def converge(self, passes: int = 60, seconds: float = 1.0) -> int:
        """Passes until the resource is Ready (raises if it never is)."""
        for count in range(1, passes + 1):
            self.step(seconds)
            if self.ready():
                return count
        raise AssertionError(f"not Ready after {passes} passes: {self.status.get('message')}")

    def ready(self) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in self.status.get("conditions") or [])

    def condition(self, kind: str) -> dict[str, Any]:
        return next((c for c in self.status.get("conditions") or [] if c["type"] == kind), {})

    def set_spec(self, **changes: Any) -> None:
        for key, value in changes.items():
            self.body["spec"][key] = value
        self.body["metadata"]["generation"] += 1

    def set_image(self, image: str) -> None:
        self.set_spec(image=image)

    # --- Kubernetes and EMQX ---------------------------------------------------------------------------

    def carry_out(self, plan: Plan) -> Outcome:
        for write in plan.secrets:
            self.secrets[write.body["metadata"]["name"]] = {
                k: _b64decode(v) for k, v in write.body["data"].items()}
        for obj in plan.apply:
            key = (obj["kind"], obj["metadata"]["name"])
            live = self.objects.get(key)
            desired_hash = object_hash(dict(obj))
            live_hash = (live or {}).get("metadata", {}).get("annotations", {}).get(ANNOTATION_APPLIED_HASH)
            if live_hash == desired_hash:
                continue
            new = json.loads(json.dumps(obj))
            new["metadata"].setdefault("annotations", {})[ANNOTATION_APPLIED_HASH] = desired_hash
            new["metadata"]["generation"] = (live or {}).get("metadata", {}).get("generation", 0) + 1
            new["status"] = copy.deepcopy((live or {}).get("status") or {})
            self.objects[key] = new
        for kind, name in plan.delete:
            self.objects.pop((kind, name), None)
        failures = []
        for call in plan.emqx_calls:
            self.calls.append(call)
            error = self.failures.get(type(call))
            if error is not None:
                failures.append((call, error))
                continue
            if isinstance(call, EvacuationStart):
                self.evacuations[call.node] = "prohibiting"
                self.connections[call.node] = 0
            elif isinstance(call, EvacuationStop):
                self.evacuations.pop(call.node, None)
            elif isinstance(call, ForceLeave):
                self.stopped_cores = [n for n in self.stopped_cores if n != call.node]
            elif isinstance(call, ConfigPut):
                pass
            elif isinstance(call, RebalanceStart):  # EMQX: donors = at least the average, in wait_health_check
                nodes = list(call.body["nodes"])
                average = sum(self.connections.get(n, 0) for n in nodes) / len(nodes)
                donors = [n for n in nodes if self.connections.get(n, 0) >= average]
                self.rebalances = [{"node": call.coordinator, "coordinator_node": call.coordinator,
                                    "state": "wait_health_check", "donors": donors,
                                    "recipients": [n for n in nodes if n not in donors]}]
            elif isinstance(call, RebalanceStop):
                self.rebalances = []
        for patch in plan.pod_patches:
            pod = self.pods.get(patch.name)
            if pod is None:
                continue
            if patch.subresource == "status":
                for cond in patch.patch["status"]["conditions"]:
                    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"]
                                                   if c["type"] != cond["type"]] + [dict(cond)]
            else:
                pod["metadata"].setdefault("annotations", {}).update(patch.patch["metadata"]["annotations"])
        failed = [call for call, _ in failures]
        deleted = []
        for deletion in plan.pod_deletions:
            if deletion.after is not None and deletion.after in failed:
                continue
            pod = self.pods.get(deletion.name)
            if pod is not None and pod["metadata"]["uid"] == deletion.uid:
                del self.pods[deletion.name]
                self.deleted.append(deletion.name)
                deleted.append(deletion.name)
        return Outcome(tuple(failures), tuple(deleted))

    def controllers(self) -> None:
        sts = next((o for (k, _), o in self.objects.items() if k == "StatefulSet"), None)
        if sts is not None:
            template = sts["spec"]["template"]
            revision = "rev-" + object_hash(template)[:8]
            sts["status"].update(observedGeneration=sts["metadata"]["generation"], updateRevision=revision)
            for ordinal in range(sts["spec"]["replicas"]):
                name = f"{sts['metadata']['name']}-{ordinal}"
                if name not in self.pods:
                    self.pods[name] = self._pod(name, template, {LABEL_REVISION: revision})
            for name in [n for n, p in self.pods.items() if p["metadata"]["labels"][LABEL_DB_ROLE] == CORE
                         and int(n.rsplit("-", 1)[1]) >= sts["spec"]["replicas"]]:
                del self.pods[name]
        deploy = next((o for (k, _), o in self.objects.items() if k == "Deployment"), None)
        if deploy is not None:
            self._deployment(deploy)
        for pod in self.pods.values():
            self._kubelet(pod)

    def _deployment(self, deploy: dict[str, Any]) -> None:
        template = deploy["spec"]["template"]
        template_hash = object_hash(template)[:8]
        mine = [p for p in self.pods.values() if p["metadata"]["labels"][LABEL_DB_ROLE] != CORE]
        current = [p for p in mine if p["metadata"]["labels"].get("pod-template-hash") == template_hash]
        old = [p for p in mine if p not in current]
        desired = deploy["spec"]["replicas"]
        available = [p for p in current if _ready(p)]
        if old and available and len(mine) > desired:
            victim = min(old, key=lambda p: (p["metadata"].get("annotations", {}).get(ANNOTATION_DELETION_COST)
                                             != "-1000", p["metadata"]["name"]))
            del self.pods[victim["metadata"]["name"]]
            mine.remove(victim)
            old.remove(victim)
        if len(current) < desired and len(mine) < desired + 1:
            self._counter += 1
            name = f"{deploy['metadata']['name']}-{template_hash}-{self._counter:03d}"
            self.pods[name] = self._pod(name, template, {"pod-template-hash": template_hash})
        elif len(current) > desired:
            del self.pods[max(current, key=lambda p: p["metadata"]["name"])["metadata"]["name"]]
        elif not old and len(mine) > desired:
            del self.pods[max(mine, key=lambda p: p["metadata"]["name"])["metadata"]["name"]]
        updated = len([p for p in self.pods.values()
                       if p["metadata"]["labels"].get("pod-template-hash") == template_hash])
        deploy["status"].update(observedGeneration=deploy["metadata"]["generation"], updatedReplicas=updated)

    def _pod(self, name: str, template: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        self._counter += 1
        metadata = copy.deepcopy(template["metadata"])
        metadata["labels"].update(labels)
        metadata.update(name=name, namespace=self.namespace, uid=f"uid-{self._counter}",
                        creationTimestamp=format_time(self.now))
        ip = f"10.0.{self._counter // 250}.{self._counter % 250 + 1}"
        return {"metadata": metadata, "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending", "conditions": [], "podIP": ip}}

    def _kubelet(self, pod: dict[str, Any]) -> None:
        status = pod["status"]
        image = _image(pod)
        gates = [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]
        gate_open = all(any(c["type"] == g and c["status"] == "True" for c in status["conditions"]) for g in gates)
        name = pod["metadata"]["name"]
        if image.rsplit(":", 1)[-1] in BAD_TAGS:
            waiting = {"reason": "ErrImagePull", "message": f'failed to pull image "{image}": manifest unknown'}
            status.update(phase="Pending", containerStatuses=[
                {"name": "emqx", "ready": False, "restartCount": 0, "state": {"waiting": waiting}}])
            ready = False
        elif name in self.crash:
            waiting = {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}
            status.update(phase="Running", containerStatuses=[
                {"name": "emqx", "ready": False, "restartCount": 3, "state": {"waiting": waiting},
                 "lastState": {"terminated": {"exitCode": 1, "message": "failed_to_check_schema"}}}])
            ready = False
        else:
            ready = name not in self.not_ready
            running = {"running": {"startedAt": format_time(self.now)}}
            status.update(phase="Running", containerStatuses=[
                {"name": "emqx", "ready": ready, "restartCount": 0, "state": running}])
        conditions = [c for c in status["conditions"] if c["type"] not in ("Ready", "ContainersReady")]
        conditions.append({"type": "ContainersReady", "status": "True" if ready else "False"})
        conditions.append({"type": "Ready", "status": "True" if ready and gate_open else "False"})
        status["conditions"] = conditions

    def pod(self, name: str) -> dict[str, Any]:
        return self.pods[name]

    def core_pods(self) -> list[str]:
        return sorted(n for n, p in self.pods.items() if p["metadata"]["labels"][LABEL_DB_ROLE] == CORE)

    def replicant_pods(self) -> list[str]:
        return sorted(n for n, p in self.pods.items() if p["metadata"]["labels"][LABEL_DB_ROLE] != CORE)

    def images(self) -> dict[str, str]:
        return {n: _image(p) for n, p in self.pods.items()}


def _image(pod: dict[str, Any]) -> str:
    return next(c["image"] for c in pod["spec"]["containers"] if c["name"] == "emqx")


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def _containers_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "ContainersReady" and c["status"] == "True" for c in pod["status"]["conditions"])


def _b64decode(value: str) -> str:
    import base64

    return base64.b64decode(value).decode()


__all__ = ["BAD_TAGS", "Cluster", "FRESH", "NOW"]

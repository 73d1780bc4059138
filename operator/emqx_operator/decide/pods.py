"""What a pod's status says, in the kubelet's own words (pure).

A definitive failure is one that waiting will not cure: the image cannot be pulled, the container
cannot be created from its spec, or the node crashed on start more than once. The operator stops
a rollout on one at once, quoting Kubernetes' reason and message; a node that is merely slow is
given `nodeReadyTimeoutSeconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emqx_operator.model import Obj, container_of
from kubectl_emqx.domain.vocabulary import CONTAINER_NAME, LABEL_REVISION

# Waiting reasons a kubelet writes that need someone to act (an image, a Secret, a spec to fix).
DEFINITIVE_WAITING = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError",
})
CRASH_LOOP = "CrashLoopBackOff"
# A node that crashed on start this many times is not going to come up by itself.
CRASHES_BEFORE_STALL = 2


def container_image(workload: Obj | None) -> str | None:
    """The emqx container's image in a StatefulSet, Deployment or Pod (None when absent)."""
    if not workload:
        return None
    container = container_of(workload)
    return str(container.get("image")) if container else None


def name(pod: Obj) -> str:
    return str(pod["metadata"]["name"])


def uid(pod: Obj) -> str:
    return str(pod["metadata"].get("uid") or "")


def annotations_of(obj: Obj | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def template_annotation(workload: Obj | None, key: str) -> str | None:
    template = ((workload or {}).get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(key)


def revision(pod: Obj) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(LABEL_REVISION)


def terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def ip(pod: Obj) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def _conditions(pod: Obj) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("conditions") or [])


def condition_true(pod: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in _conditions(pod))


def ready(pod: Obj) -> bool:
    if terminating(pod) or (pod.get("status") or {}).get("phase") != "Running":
        return False
    return condition_true(pod, "Ready")


def dashboard_port(pod: Obj, default: int, port_name: str) -> int:
    """The dashboard port the pod's own spec declares: during a rolling restart old pods keep theirs."""
    for port in (container_of(pod) or {}).get("ports") or []:
        if port.get("name") == port_name:
            return int(port.get("containerPort") or default)
    return default


def _emqx_status(pod: Obj) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return dict(status)
    return {}


def restart_count(pod: Obj) -> int:
    return int(_emqx_status(pod).get("restartCount") or 0)


@dataclass(frozen=True)
class PodState:
    """Why a pod is not serving, as a state word and Kubernetes' message."""

    state: str  # Scheduling | Starting | ImagePullFailed | ContainerConfigError | CrashLooping | Booting | Running
    message: str
    definitive: bool = False


def state(pod: Obj | None) -> PodState:
    """The kubelet's view of a pod (not EMQX's): what it waits for, and whether waiting helps."""
    if pod is None:
        return PodState("Creating", "the pod does not exist yet")
    status = pod.get("status") or {}
    scheduled = next((c for c in _conditions(pod) if c.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False":
        text = scheduled.get("message") or scheduled.get("reason") or "not scheduled"
        return PodState("Scheduling", f"{scheduled.get('reason') or 'Unschedulable'}: {text}")
    container = _emqx_status(pod)
    current = container.get("state") or {}
    waiting = current.get("waiting")
    terminated = current.get("terminated")
    last = (container.get("lastState") or {}).get("terminated") or {}
    restarts = int(container.get("restartCount") or 0)
    if waiting:
        reason = str(waiting.get("reason") or "")
        text = f"{reason}: {waiting.get('message')}" if waiting.get("message") else reason
        if reason in DEFINITIVE_WAITING:
            word = "ImagePullFailed" if "Image" in reason else "ContainerConfigError"
            return PodState(word, text, definitive=True)
        if reason == CRASH_LOOP:
            return PodState("CrashLooping", _crash_text(text, last, restarts),
                            definitive=restarts >= CRASHES_BEFORE_STALL)
        return PodState("Starting", text or "the container is being created")
    if terminated:
        text = f"exited with code {terminated.get('exitCode')}"
        if terminated.get("exitCode") not in (0, None):
            return PodState("CrashLooping", _crash_text(text, terminated, restarts),
                            definitive=restarts >= CRASHES_BEFORE_STALL)
        return PodState("Starting", text)
    if not container:
        return PodState("Starting", f"pod phase {status.get('phase') or 'Pending'}")
    if ready(pod):
        return PodState("Running", "ready")
    return PodState("Booting", "the container runs; the node is not ready yet")


def _crash_text(text: str, terminated: Obj, restarts: int) -> str:
    detail = f"{text} (restarted {restarts} time{'s' if restarts != 1 else ''})"
    if terminated:
        last_words = " ".join(str(terminated.get("message") or "").split())[-300:]
        detail += f"; last exit code {terminated.get('exitCode')}"
        if last_words:
            detail += f": {last_words}"
    return detail

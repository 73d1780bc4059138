"""`kubectl emqx delete NAME`: say what goes (and what stays), ask, delete the resource."""

from __future__ import annotations

from typing import Any

import click

from kubectl_emqx.cli.common import confirm, core_claim_name, core_volume_retention, info, load_cluster
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, state, wait_options, yes_option


@click.command("delete", cls=EmqxCommand)
@name_argument
@yes_option
@wait_options
@kube_options
def delete(name: str, yes: bool, wait: bool, timeout: float) -> None:
    """Delete an EMQX cluster and the objects the operator made for it.

    Core data volumes are not deleted by this command: they follow the PVC retention policy of the
    core StatefulSet (Kubernetes keeps them by default).
    """
    api = state().api()
    namespace = api.namespace
    body = load_cluster(api, name, namespace)
    info(deletion_plan(body))
    confirm(f"Delete EMQX cluster {namespace}/{name}?", yes)
    api.delete_emqx(name, namespace)
    info(f"{namespace}/{name} deletion requested")
    if wait:
        from kubectl_emqx.cli.wait import wait_until_deleted

        wait_until_deleted(api, name, namespace, timeout)


def deletion_plan(body: dict[str, Any]) -> str:
    from kubectl_emqx.domain.vocabulary import object_names
    from kubectl_emqx.view.status_model import desired_replicas

    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    names = object_names(name)
    cores, replicants = desired_replicas(body)
    owned = [
        f"StatefulSet {names.core_statefulset} ({cores} core node(s))",
        f"Deployment {names.replicant_deployment} ({replicants} replicant node(s))" if replicants else None,
        f"Services {names.headless_service}, {names.dashboard_service}, {names.listeners_service}",
        f"ConfigMap {names.configmap}",
        f"Secrets {names.cookie_secret}, {names.api_key_secret}",
        f"PodDisruptionBudgets {names.core_pdb}" + (f", {names.replicant_pdb}" if replicants else ""),
    ]
    lines = [f"This deletes EMQX cluster {namespace}/{name} and what the operator made for it:"]
    lines += [f"  - {item}" for item in owned if item]
    lines.append("Every MQTT client connected to it is disconnected.")
    retention = core_volume_retention(body)
    claims = f"{core_claim_name(name, 0)}..{core_claim_name(name, max(cores - 1, 0))}"
    if retention is None:
        lines.append("Cores keep their data in emptyDir volumes (no storage configured): it is lost.")
    elif retention.get("whenDeleted") == "Delete":
        lines.append(f"Core data volumes ({claims}) are deleted too (PVC retention policy whenDeleted=Delete).")
    else:
        lines.append(
            f"Core data volumes ({claims}) are kept (PVC retention policy whenDeleted=Retain): "
            "delete those PVCs yourself to free the storage."
        )
    return "\n".join(lines)

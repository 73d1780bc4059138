"""The CRD against the real apiserver: every bad resource is rejected with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.bad_crs import BAD_CRS, GOOD_CRS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crd_installed(sandbox: Any) -> None:
    from sandbox import operator_process

    operator_process.install_crd(sandbox)


def test_bad_resources_are_rejected_naming_the_field(api_client: Any, namespace: str, crd_installed: None) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    custom = client.CustomObjectsApi(api_client)
    accepted, wrong_message = [], []
    for description, body, expected in BAD_CRS:
        group, version = body["apiVersion"].split("/")
        try:
            custom.create_namespaced_custom_object(group, version, namespace, "emqxes", body, dry_run="All")
            accepted.append(description)
        except ApiException as exc:
            if exc.status != 422 or expected not in (exc.body or ""):
                wrong_message.append(f"{description}: {exc.status} {exc.body}")
    assert not accepted, f"the apiserver accepted: {accepted}"
    assert not wrong_message, "\n".join(wrong_message)
    assert len(BAD_CRS) >= 10


def test_good_resources_are_accepted_with_defaults(api_client: Any, namespace: str, crd_installed: None) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(api_client)
    for description, body in GOOD_CRS:
        group, version = body["apiVersion"].split("/")
        created = custom.create_namespaced_custom_object(group, version, namespace, "emqxes", body, dry_run="All")
        spec = created["spec"]
        assert spec["coreTemplate"]["spec"]["replicas"] >= 1, description
        # No schema default for replicants: the operator picks what the image can run.
        assert spec["replicantTemplate"]["spec"].get("replicas") == (
            ((body.get("spec") or {}).get("replicantTemplate") or {}).get("spec") or {}).get("replicas"), description


def test_kubectl_scale_works_on_a_resource_that_left_replicants_to_the_operator(
        api_client: Any, namespace: str, crd_installed: None, kubectl: Any) -> None:
    """The scale subresource's path (.spec.replicantTemplate.spec.replicas) may be absent: kubectl
    scale still sets it."""
    from kubernetes import client

    body = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "sample"},
            "spec": {"image": "emqx/emqx:latest"}}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace,
                                                                        "emqxes", body)
    kubectl("scale", "-n", namespace, "emqx/sample", "--replicas=2")
    scaled = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", namespace, "emqxes", "sample")
    assert scaled["spec"]["replicantTemplate"]["spec"]["replicas"] == 2

"""The install manifests (one source for install, uninstall and the RBAC tests) and the operator image."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from emqx_operator import main as operator_main
from emqx_operator import observe
from emqx_operator.leader import DEFAULT_LEASE_NAME

from kubectl_emqx import __version__
from kubectl_emqx.domain import crd, install, vocabulary
from tests.image_helpers import dockerfile_stages

REPO = Path(__file__).resolve().parents[2]

# Every call the operator makes, as (apiGroup, resource) -> verbs; the ClusterRole must say exactly this.
EXPECTED_WORKLOAD_PERMISSIONS = {
    ("apps.emqx.io", "emqxes"): {"get", "list", "watch"},
    ("apps.emqx.io", "emqxes/status"): {"patch"},
    ("apps.emqx.io", "emqxes/finalizers"): {"update"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch", "patch", "delete"},
    ("", "pods/status"): {"patch"},
    ("", "events"): {"create"},
}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def permissions(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def test_cluster_wide_install_in_apply_order() -> None:
    objects = install.build_manifests(install.InstallOptions())
    assert [(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects] == [
        ("Namespace", None, "emqx-operator-system"),
        ("CustomResourceDefinition", None, "emqxes.apps.emqx.io"),
        ("ServiceAccount", "emqx-operator-system", "emqx-operator"),
        ("ClusterRole", None, "emqx-operator"),
        ("Role", "emqx-operator-system", "emqx-operator-leader-election"),
        ("ClusterRoleBinding", None, "emqx-operator"),
        ("RoleBinding", "emqx-operator-system", "emqx-operator-leader-election"),
        ("Service", "emqx-operator-system", "emqx-operator-metrics"),
        ("Deployment", "emqx-operator-system", "emqx-operator"),
    ]
    assert by_kind(objects, "CustomResourceDefinition") == [crd.build_crd()]
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            assert obj["metadata"]["labels"] == {
                "app.kubernetes.io/name": "emqx-operator",
                "app.kubernetes.io/instance": "emqx-operator-system",
                "app.kubernetes.io/version": __version__,
                "app.kubernetes.io/managed-by": "kubectl-emqx",
            }, obj["kind"]
    (binding,) = by_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "emqx-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "emqx-operator",
                                    "namespace": "emqx-operator-system"}]


def test_the_cluster_role_grants_exactly_the_calls_the_operator_makes() -> None:
    (role,) = by_kind(install.build_manifests(install.InstallOptions()), "ClusterRole")
    assert permissions(role["rules"]) == EXPECTED_WORKLOAD_PERMISSIONS
    text = json.dumps(role)
    assert "*" not in text, "no wildcards"
    for rule in role["rules"]:
        assert "resourceNames" not in rule


def test_every_kind_the_operator_applies_may_be_listed_read_created_and_patched() -> None:
    (role,) = by_kind(install.build_manifests(install.InstallOptions()), "ClusterRole")
    granted = permissions(role["rules"])
    plurals = {"ConfigMap": ("", "configmaps"), "Service": ("", "services"), "StatefulSet": ("apps", "statefulsets"),
               "Deployment": ("apps", "deployments"), "PodDisruptionBudget": ("policy", "poddisruptionbudgets")}
    for kind in observe.OWNED_KINDS:
        assert kind in plurals, f"{kind} is a new owned kind: grant it in kubectl_emqx/install.py"
        assert {"get", "list", "create", "patch"} <= granted[plurals[kind]], kind


def test_leader_election_role_is_limited_to_the_operator_namespace_and_its_lease() -> None:
    options = install.InstallOptions(namespace="ops", lease_name="my-lease")
    (role,) = [r for r in by_kind(install.build_manifests(options), "Role") if r["metadata"]["namespace"] == "ops"]
    assert role["metadata"]["name"] == "emqx-operator-leader-election"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["my-lease"],
         "verbs": ["get", "update"]},
    ]
    assert install.NAME == DEFAULT_LEASE_NAME


def test_watch_namespaces_get_roles_instead_of_a_cluster_role() -> None:
    options = install.InstallOptions(namespace="ops", watch_namespaces=("mqtt", "mqtt-staging"))
    objects = install.build_manifests(options)
    assert by_kind(objects, "ClusterRole") == [] and by_kind(objects, "ClusterRoleBinding") == []
    workload_roles = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "emqx-operator"]
    assert [r["metadata"]["namespace"] for r in workload_roles] == ["mqtt", "mqtt-staging"]
    for role in workload_roles:
        assert permissions(role["rules"]) == EXPECTED_WORKLOAD_PERMISSIONS
    bindings = [b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"] == "emqx-operator"]
    assert [(b["metadata"]["namespace"], b["subjects"][0]["namespace"]) for b in bindings] == [
        ("mqtt", "ops"), ("mqtt-staging", "ops")]
    (deployment,) = by_kind(objects, "Deployment")
    args = operator_main.parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.namespace == ["mqtt", "mqtt-staging"]


def test_deployment_is_hardened_and_probed_on_the_operator_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    options = install.InstallOptions(namespace="ops", image="registry.local/op:1", replicas=2)
    (deployment,) = by_kind(install.build_manifests(options), "Deployment")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == vocabulary.OPERATOR_SELECTOR.split("=")[1]
    assert deployment["metadata"]["labels"][vocabulary.APP_VERSION_LABEL] == __version__
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "emqx-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "registry.local/op:1"
    assert "command" not in container, "the image's ENTRYPOINT runs the operator"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert env["EMQX_OPERATOR_LIVENESS"] == f"http://0.0.0.0:{ports['health']}/healthz"
    assert env["EMQX_OPERATOR_METRICS"] == f"0.0.0.0:{ports['metrics']}"
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts

    # The container's args and env are what the operator's own parser understands.
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    monkeypatch.setenv("POD_NAME", "emqx-operator-abc")
    args = operator_main.parse_args(container["args"])
    assert args.all_namespaces and not args.namespace
    assert args.leader_elect is True and args.lease_name == "emqx-operator"
    assert args.liveness == env["EMQX_OPERATOR_LIVENESS"] and args.metrics_addr == env["EMQX_OPERATOR_METRICS"]
    assert operator_main.lease_namespace(args) == "ops"
    assert operator_main.identity(args) == "emqx-operator-abc"
    value_from = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert value_from == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_render_yaml_and_json_round_trip() -> None:
    objects = install.build_manifests(install.InstallOptions())
    text = install.render(objects, "yaml")
    assert text.startswith("---\n") and "&id" not in text
    assert list(yaml.safe_load_all(text)) == objects
    listing = json.loads(install.render(objects, "json"))
    assert listing["kind"] == "List" and listing["items"] == objects


def test_object_ref() -> None:
    assert install.object_ref({"kind": "ClusterRole", "metadata": {"name": "x"}}) == "clusterrole/x"
    assert install.object_ref({"kind": "Role", "metadata": {"name": "x", "namespace": "ns"}}) == \
        "role/x in namespace ns"


def test_every_install_kind_has_an_api_path() -> None:
    for kind in install.KIND_ORDER:
        assert kind in vocabulary.KIND_PATHS
    assert vocabulary.kind_path("Role", "ns", "r") == "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles/r"
    assert vocabulary.kind_path("Role", None) == "/apis/rbac.authorization.k8s.io/v1/roles"
    assert vocabulary.kind_path("ClusterRole", "ignored", "r") == "/apis/rbac.authorization.k8s.io/v1/clusterroles/r"
    assert vocabulary.kind_path("Namespace", None, "ns") == "/api/v1/namespaces/ns"


# --- the image --------------------------------------------------------------------------------


def test_image_runs_the_operator_console_script_as_non_root() -> None:
    stages = dockerfile_stages()
    final = stages[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root user (runAsNonRoot can verify it)"
    assert int(user) == install.RUN_AS_USER
    (entrypoint,) = [args for instruction, args in final if instruction == "ENTRYPOINT"]
    assert json.loads(entrypoint) == [install.ENTRY_POINT]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[install.ENTRY_POINT] == "emqx_operator.main:main"
    assert not any(instruction == "RUN" for instruction, _ in final), "the runtime stage only copies the venv"


def test_image_installs_runtime_dependencies_only() -> None:
    stages = dockerfile_stages()
    runs = " ".join(args for stage in stages for instruction, args in stage if instruction == "RUN")
    assert '".[operator]"' in runs
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["operator"]
    operator_names = [re.split(r"[<>=!~ \[]", requirement)[0] for requirement in extra]
    assert operator_names == ["kopf", "prometheus_client"], "the operator's runtime libraries only"
    assert not any(name in project["dependencies"] for name in operator_names), "never a plugin dependency"
    for dev in ("[test]", "[dev]", "pytest", "ruff", "mypy", "requirements-dev"):
        assert dev not in runs
    copied = " ".join(args for stage in stages for instruction, args in stage if instruction == "COPY")
    for unwanted in ("tests", "sandbox", "bench", ".venv"):
        assert unwanted not in copied.split(), unwanted
    assert "pip uninstall" in runs, "no pip left in the runtime venv"


def test_dockerignore_sends_only_what_the_image_installs() -> None:
    lines = (REPO / "operator" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {"!pyproject.toml", "!kubectl_emqx/", "!operator/emqx_operator/"} <= set(lines)


def test_kopf_never_gives_up_on_a_forbidden_watch() -> None:
    """A removed list/watch rule must not make kopf exit after its retries (the operator reports
    Forbidden conditions and resumes once the rule is back)."""
    import itertools

    from emqx_operator.handlers import RetryForever

    backoffs = RetryForever()
    first = list(itertools.islice(backoffs, 100))
    assert first[:3] == [1, 1, 2] and max(first) == 30 and len(first) == 100
    assert list(itertools.islice(backoffs, 3)) == [1, 1, 2], "every request starts its own sequence"


def test_install_help_documents_what_plugin_users_need() -> None:
    """`kubectl emqx install --help` names every resource and verb of the user rules (so the text
    cannot drift from the Role the RBAC integration test runs the verbs with)."""
    from click.testing import CliRunner

    from kubectl_emqx.cli.main import cli

    text = " ".join(CliRunner().invoke(cli, ["install", "--help"], prog_name="kubectl emqx").output.split())
    rules = [*install.USER_READ_RULES, *install.USER_DASHBOARD_RULES, *install.USER_OPTIONAL_RULES,
             *install.USER_WRITE_RULES, *install.USER_BACKUP_RULES]
    for rule in rules:
        for resource in rule.resources:
            name = f"{resource}.{rule.api_group}" if rule.api_group == install.GROUP else resource
            assert name in text, name
        for verb in rule.verbs:
            assert verb in text, verb
    role = install.user_role("mqtt", dashboard=True)
    assert {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]} in role["rules"]
    assert role["metadata"] == {"name": "emqx-user", "namespace": "mqtt"}

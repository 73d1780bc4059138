"""The Helm chart is generated from the install manifests (one source), and its values are
InstallOptions: the same values file gives `kubectl emqx install --values` the same objects. The
real Helm renders, lints and installs the chart in tests/integration/test_helm.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from emqx_operator import main as operator_main

from dist_tools import helm_chart
from kubectl_emqx import __version__
from kubectl_emqx.cli import operator as operator_cli
from kubectl_emqx.domain import crd, install, install_values
from tests.unit.test_install_cli import FakeInstallCluster, run

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "emqx-operator"
PLUGIN = str(Path(sys.executable).parent / "kubectl-emqx")


def invoke(*args: str) -> Result:
    return run(FakeInstallCluster(), *args)


def test_the_committed_chart_is_the_generators_output() -> None:
    committed = helm_chart.committed_files(CHART)
    generated = helm_chart.chart_files()
    assert sorted(committed) == sorted(generated), "regenerate: python -m dist_tools.helm_chart"
    for name, text in generated.items():
        assert committed[name] == text, f"charts/emqx-operator/{name} is stale: python -m dist_tools.helm_chart"
    assert helm_chart.main(["--check"]) == 0


def test_check_names_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    helm_chart.write(tmp_path)
    (tmp_path / "templates" / "deployment.yaml").write_text("edited by hand\n")
    assert helm_chart.main(["--check", "--out", str(tmp_path)]) == 1
    assert "templates/deployment.yaml: differs" in capsys.readouterr().err


def test_chart_metadata_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == install.NAME and chart["type"] == "application"
    assert chart["version"] == chart["appVersion"] == __version__
    assert yaml.safe_load((CHART / "crds" / "emqx.yaml").read_text()) == crd.build_crd()
    assert (CHART / "crds" / "emqx.yaml").read_text() == (REPO / "crds" / "emqx.yaml").read_text()


def test_values_yaml_is_what_install_installs_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == install_values.default_values()
    assert install_values.options_from_values(values, install.DEFAULT_NAMESPACE) == install.InstallOptions()
    assert install_values.options_from_values({}, "ops") == install.InstallOptions(namespace="ops")
    assert json.loads((CHART / "values.schema.json").read_text()) == install_values.SCHEMA
    assert install_values.problems(values) == []


def test_every_template_value_is_a_declared_value() -> None:
    declared = install_values.SCHEMA["properties"]
    for name, text in helm_chart.templates().items():
        for path in re.findall(r"\.Values\.([A-Za-z]+)", text):
            assert path in declared, (name, path)


def test_values_map_onto_install_options() -> None:
    values = {
        "image": {"repository": "registry.local/op", "tag": "7"},
        "imagePullSecrets": [{"name": "pull"}],
        "replicaCount": 2,
        "watchNamespaces": ["mqtt-b", "mqtt-a", "mqtt-b"],
        "logLevel": "debug",
        "resources": None,  # null removes the default: no resources at all
        "nodeSelector": {"pool": "ops"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "metrics": {"service": {"enabled": True}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    }
    options = install_values.options_from_values(values, "ops")
    assert options.image == "registry.local/op:7"
    assert options.watch_namespaces == ("mqtt-a", "mqtt-b")
    assert options.resources == {}
    assert options.pod_security_context == install.DEFAULT_POD_SECURITY_CONTEXT, "merged over the defaults"
    assert (options.replicas, options.log_level, options.image_pull_secrets) == (2, "debug", ("pull",))
    assert options.service_monitor and options.service_monitor_labels == {"release": "prom"}
    deployment = next(o for o in install.build_manifests(options) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "resources" not in container
    assert pod["nodeSelector"] == {"pool": "ops"} and pod["imagePullSecrets"] == [{"name": "pull"}]
    assert container["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    args = operator_main.parse_args(container["args"])
    assert args.namespace == ["mqtt-a", "mqtt-b"] and args.log_level == "debug"
    digest = "sha256:" + "ab" * 32
    pinned = install_values.options_from_values({"image": {"digest": digest, "tag": "ignored"}}, "ops")
    assert pinned.image == f"{install.DEFAULT_IMAGE_REPOSITORY}@{digest}"


@pytest.mark.parametrize(("values", "problem"), [
    ({"replicaCount": 0}, "replicaCount: 0 is less than 1"),
    ({"replicaCount": "2"}, "replicaCount: '2' is not an integer"),
    ({"replicas": 2}, "replicas: unknown value"),
    ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy: 'Sometimes' is not one of Always, IfNotPresent"),
    ({"image": {"digest": "latest"}}, "image.digest: 'latest' does not match"),
    ({"logLevel": "trace"}, "logLevel: 'trace' is not one of debug, info, warning, error"),
    ({"watchNamespaces": "mqtt"}, "watchNamespaces: 'mqtt' is not an array"),
    ({"watchNamespaces": ["MQTT"]}, "watchNamespaces[0]: 'MQTT' does not match"),
    ({"extraEnv": [{"value": "x"}]}, "extraEnv[0].name: missing"),
    ({"serviceMonitor": {"interval": "often"}}, "serviceMonitor.interval: 'often' does not match"),
    ({"serviceMonitor": {"enabled": True}, "metrics": {"service": {"enabled": False}}},
     "serviceMonitor.enabled needs metrics.service.enabled"),
    ({"metrics": None}, "metrics: missing"),
])
def test_bad_values_are_refused_naming_the_field_and_the_value(values: dict[str, object], problem: str) -> None:
    with pytest.raises(install_values.ValuesError) as refused:
        install_values.options_from_values(values, "ops")
    assert problem in str(refused.value)


def test_merge_is_helms_coalescing() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3}
    assert install_values.merge(base, {"a": {"b": 9}, "d": [3], "e": None}) == {"a": {"b": 9, "c": 2}, "d": [3]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3}


# --- kubectl emqx install --values, --crds-only, --skip-crds ---------------------------------------


def test_install_values_file_and_flags(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"replicaCount": 2, "logLevel": "warning", "watchNamespaces": ["b"],
                                      "nodeSelector": {"pool": "ops"}, "affinity": {"podAffinity": {}}}))
    later = tmp_path / "later.yaml"
    later.write_text("resources: null\naffinity: null\n")  # a later file's null removes a default or a value
    result = invoke("install", "-n", "ops", "--values", str(values), "--values", str(later), "--replicas", "3",
                    "--watch-namespace", "a", "--dry-run", "-o", "yaml")
    assert result.exit_code == 0, result.output
    expected = install.InstallOptions(namespace="ops", replicas=3, log_level="warning", watch_namespaces=("a",),
                                      node_selector={"pool": "ops"}, resources={})
    assert list(yaml.safe_load_all(result.stdout)) == install.build_manifests(expected)


def test_install_refuses_bad_values_in_one_line(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("replicaCount: two\n")
    result = invoke("install", "--values", str(values), "--dry-run", "-o", "yaml")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{values}: replicaCount: 'two' is not an integer" in result.stderr
    values.write_text("- a list\n")
    assert "not a mapping of values" in invoke("install", "--values", str(values), "--dry-run").stderr
    both = invoke("install", "--crds-only", "--skip-crds", "--dry-run")
    assert both.exit_code == 2 and "either --crds-only or --skip-crds" in both.stderr


def test_crds_only_and_skip_crds_split_the_install() -> None:
    crds = list(yaml.safe_load_all(invoke("install", "--crds-only", "--dry-run", "-o", "yaml").stdout))
    rest = list(yaml.safe_load_all(invoke("install", "--skip-crds", "--dry-run", "-o", "yaml").stdout))
    everything = list(yaml.safe_load_all(invoke("install", "--dry-run", "-o", "yaml").stdout))
    assert crds == [crd.build_crd()]
    assert "CustomResourceDefinition" not in {o["kind"] for o in rest}
    key = json.dumps
    assert sorted(map(key, crds + rest)) == sorted(map(key, everything))


def test_dry_run_output_is_stable_bytes_for_git() -> None:
    """The same flags print the same bytes in fresh processes (hash seeds differ), whatever the order
    of repeated flags: no timestamps, no random names, no server-filled fields."""
    def render(seed: str, *flags: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        completed = subprocess.run(
            [PLUGIN, "install", "--dry-run", "-o", "yaml", *flags],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=True)
        return completed.stdout

    first = render("1", "--watch-namespace", "b", "--watch-namespace", "a", "--service-monitor")
    second = render("2", "--watch-namespace", "a", "--watch-namespace", "b", "--watch-namespace", "a",
                    "--service-monitor")
    assert first == second
    objects = list(yaml.safe_load_all(first))
    assert [o["kind"] for o in objects] == sorted((o["kind"] for o in objects), key=install.KIND_ORDER.index)
    for obj in objects:
        assert set(obj) - {"apiVersion", "kind", "metadata", "spec", "rules", "roleRef", "subjects"} == set()
        assert set(obj["metadata"]) <= {"name", "namespace", "labels", "annotations"}, obj["metadata"]
    for field in ("creationTimestamp", "uid", "resourceVersion", "managedFields"):
        assert not re.search(rf"^\s*{field}:", first, re.M), field


def test_cli_choices_are_the_operators() -> None:
    assert operator_cli.LOG_LEVELS == install.LOG_LEVELS == operator_main.LOG_LEVELS
    assert operator_cli.DEFAULT_NAMESPACE == install.DEFAULT_NAMESPACE

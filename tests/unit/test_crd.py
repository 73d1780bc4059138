from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.domain import crd, spec, validation
from tests.unit.bad_crs import BAD_CRS, GOOD_CRS

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "emqx.yaml"


def spec_schema(version: str = "v2beta1") -> dict[str, Any]:
    (found,) = [v for v in crd.build_crd()["spec"]["versions"] if v["name"] == version]
    return found["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_crd_file_is_generated_output() -> None:
    assert CRD_FILE.read_text() == crd.render_yaml(), "regenerate: python -m kubectl_emqx.domain.crd > crds/emqx.yaml"
    assert yaml.safe_load(CRD_FILE.read_text()) == crd.build_crd()


def test_names_and_versions() -> None:
    body = crd.build_crd()
    assert body["metadata"]["name"] == "emqxes.apps.emqx.io"
    crd_spec = body["spec"]
    assert crd_spec["group"] == "apps.emqx.io" and crd_spec["scope"] == "Namespaced"
    assert crd_spec["names"] == {
        "kind": "EMQX",
        "listKind": "EMQXList",
        "plural": "emqxes",
        "singular": "emqx",
        "shortNames": ["emqx"],
    }
    served = {v["name"]: (v["served"], v["storage"]) for v in crd_spec["versions"]}
    assert served == {"v2beta1": (True, True), "v2alpha1": (True, False)}
    v2alpha1 = crd_spec["versions"][1]
    assert v2alpha1["deprecated"] is True and "v2beta1" in v2alpha1["deprecationWarning"]
    # One schema for both versions, so no conversion webhook is needed.
    assert crd_spec["versions"][0]["schema"] == crd_spec["versions"][1]["schema"]
    assert "conversion" not in crd_spec


def test_subresources() -> None:
    for version in crd.build_crd()["spec"]["versions"]:
        assert version["subresources"] == {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicantTemplate.spec.replicas",
                "statusReplicasPath": ".status.replicantNodesStatus.replicas",
                "labelSelectorPath": ".status.replicantNodesStatus.labelSelector",
            },
        }
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["type"] == "object" and status["x-kubernetes-preserve-unknown-fields"] is True


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in crd.build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Image"]["jsonPath"] == ".status.currentImage"
    assert columns["Cores"]["jsonPath"] == ".spec.coreTemplate.spec.replicas"
    assert columns["Cores Ready"]["jsonPath"] == ".status.coreNodesStatus.readyReplicas"
    assert columns["Replicants"]["jsonPath"] == ".spec.replicantTemplate.spec.replicas"
    assert columns["Replicants Ready"]["jsonPath"] == ".status.replicantNodesStatus.readyReplicas"
    assert columns["Status"]["jsonPath"] == ".status.phase"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_replica_defaults_materialise_without_templates() -> None:
    """Cores default to 3 in the schema; replicants have no schema default (the operator picks what
    the image can run: see spec.default_replicants)."""
    schema = spec_schema()
    for role, minimum in (("coreTemplate", 1), ("replicantTemplate", 0)):
        template = schema["properties"][role]
        assert template["default"] == {}
        assert template["properties"]["spec"]["default"] == {}
        replicas = template["properties"]["spec"]["properties"]["replicas"]
        assert (replicas.get("default"), replicas["minimum"], replicas["type"]) == (
            3 if role == "coreTemplate" else None, minimum, "integer")
    assert schema["properties"]["config"]["default"] == {}
    assert schema["properties"]["config"]["properties"]["mode"] == {
        "type": "string",
        "enum": ["Merge", "Replace"],
        "default": "Merge",
    }
    assert schema["properties"]["clusterDomain"]["default"] == "cluster.local"


def test_update_strategy_is_typed() -> None:
    strategy = spec_schema()["properties"]["updateStrategy"]["properties"]
    assert strategy["type"]["enum"] == ["RollingUpdate", "Recreate"]
    assert strategy["allowDowngrade"]["type"] == "boolean"
    assert strategy["initialDelaySeconds"]["type"] == "integer"
    evacuation = strategy["evacuationStrategy"]["properties"]
    assert {name: field["minimum"] for name, field in evacuation.items()} == {
        "waitTakeover": 0,
        "waitHealthCheck": 0,
        "connEvictRate": 1,
        "sessEvictRate": 1,
    }


def test_cel_rules_name_the_fields() -> None:
    schema = spec_schema()
    messages = [rule["message"] for rule in schema["x-kubernetes-validations"]]
    assert any("spec.image" in m and "spec.emqxTemplate.image" in m for m in messages)
    for role in ("coreTemplate", "replicantTemplate"):
        (rule,) = schema["properties"][role]["properties"]["spec"]["x-kubernetes-validations"]
        assert f"spec.{role}.spec.minAvailable" in rule["message"]
    for rule in schema["properties"]["bootstrapAPIKeys"]["items"]["x-kubernetes-validations"]:
        assert "spec.bootstrapAPIKeys" in rule["message"]


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    """Structural-schema check: every node has a type (or is int-or-string)."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(path)
    for name, child in (schema.get("properties") or {}).items():
        problems += _walk(child, f"{path}.{name}")
    if "items" in schema:
        problems += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _walk(schema["additionalProperties"], f"{path}{{}}")
    return problems


def test_schema_is_structural() -> None:
    root = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(root, "") == []
    assert root["required"] == ["spec"]


@pytest.mark.parametrize(
    ("image", "valid"),
    [
        ("emqx/emqx:5.8.9", True),
        ("emqx", True),
        ("emqx/emqx-enterprise:latest", True),
        ("localhost:5000/emqx/emqx:5.8.9", True),
        ("Registry.Example.com/mirror/emqx/emqx:5.8.1-elixir", True),
        ("emqx/emqx@sha256:" + "a" * 64, True),
        ("emqx/emqx:5.8.9@sha256:" + "a" * 64, True),
        ("emqx/emqx:5.8 .1", False),
        ("emqx/EMQX:5.8.9", False),
        ("emqx/emqx::5.8.9", False),
        ("emqx/emqx:", False),
        ("", False),
        ("emqx/emqx@sha256:short", False),
    ],
)
def test_image_pattern(image: str, valid: bool) -> None:
    assert bool(re.fullmatch(crd.IMAGE_PATTERN, image)) is valid


def test_bad_cr_table() -> None:
    assert len(BAD_CRS) >= 12
    descriptions = [description for description, _, _ in BAD_CRS]
    assert len(descriptions) == len(set(descriptions))
    for description, body, expected in BAD_CRS:
        assert body["kind"] == "EMQX" and body["apiVersion"].startswith("apps.emqx.io/"), description
        assert "spec" in expected, description


def test_good_crs_pass_domain_validation() -> None:
    for description, body in GOOD_CRS:
        assert validation.validate(spec.normalize(body)) == [], description

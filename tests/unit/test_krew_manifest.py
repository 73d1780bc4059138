"""krew/emqx.yaml against krew's validation rules (re-implemented from validate-krew-manifest:
sigs.k8s.io/krew internal/index/validation), its template, and the archive's pinned dependencies."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from dist_tools import build_plugin
from kubectl_emqx import __version__

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "krew" / "emqx.yaml"

SUPPORTED = {
    "windows": {"386", "amd64", "arm64"},
    "linux": {"386", "amd64", "arm", "arm64", "ppc64le"},
    "darwin": {"386", "amd64", "arm64"},
}
PAIRS = [(os_, arch) for os_, arches in SUPPORTED.items() for arch in arches]
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
LICENSE_NAMES = re.compile(r"^(license|license\.txt|license\.md|licenses.*|copying.*)$", re.I)


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics for matchLabels and In/NotIn/Exists/DoesNotExist."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def manifest_problems(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    problems = []
    if doc.get("apiVersion") != "krew.googlecontainertools.github.com/v1alpha2" or doc.get("kind") != "Plugin":
        problems.append("apiVersion/kind")
    name = (doc.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[\w-]+", name) or name.lower() in WINDOWS_RESERVED or name != path.stem:
        problems.append(f"name {name!r}")
    spec = doc.get("spec") or {}
    short = spec.get("shortDescription") or ""
    if not short or "\n" in short.strip():
        problems.append("shortDescription")
    if not spec.get("description"):
        problems.append("description")
    if not SEMVER.match(spec.get("version") or ""):
        problems.append(f"version {spec.get('version')!r}")
    platforms = spec.get("platforms") or []
    if not platforms:
        problems.append("no platforms")
    matched: list[set[tuple[str, str]]] = []
    for index, platform in enumerate(platforms):
        where = f"platforms[{index}]"
        if not re.fullmatch(r"https://\S+\.(tar\.gz|zip)", platform.get("uri") or ""):
            problems.append(f"{where}.uri")
        if not re.fullmatch(r"[a-f0-9]{64}", platform.get("sha256") or ""):
            problems.append(f"{where}.sha256")
        if not platform.get("bin"):
            problems.append(f"{where}.bin")
        files = platform.get("files")
        if files is not None and (not files or any(not item.get("from") or not item.get("to") for item in files)):
            problems.append(f"{where}.files")
        installed = [Path(item["from"]).name for item in files or []]
        if not any(LICENSE_NAMES.match(name) for name in installed):
            problems.append(f"{where}: no LICENSE among files")
        selector = platform.get("selector") or {}
        keys = set(selector.get("matchLabels") or {})
        keys |= {item.get("key") for item in selector.get("matchExpressions") or []}
        if not keys or keys - {"os", "arch"}:
            problems.append(f"{where}.selector keys {sorted(keys)}")
        pairs = {(os_, arch) for os_, arch in PAIRS if selector_matches(selector, {"os": os_, "arch": arch})}
        if not pairs:
            problems.append(f"{where} matches no supported os/arch")
        for other in matched:
            if pairs & other:
                problems.append(f"{where} overlaps another platform on {sorted(pairs & other)}")
        matched.append(pairs)
    return problems


def test_committed_manifest_passes_krews_rules() -> None:
    assert manifest_problems(MANIFEST) == []


def test_manifest_is_the_rendered_template_for_this_version() -> None:
    """krew/emqx.yaml comes from `make plugin`: same version as the package, same text as the
    template renders (only the archive's sha256 and size come from the build)."""
    doc = yaml.safe_load(MANIFEST.read_text())
    assert doc["spec"]["version"] == f"v{__version__}", "stale manifest: run `make plugin`"
    platform = doc["spec"]["platforms"][0]
    size = re.search(r"about (\d+) MB", doc["spec"]["caveats"])
    assert size is not None
    rendered = build_plugin.render_manifest(__version__, platform["sha256"], int(size.group(1)) * 1_000_000)
    assert MANIFEST.read_text() == rendered, "krew/emqx.yaml differs from krew/emqx.yaml.in: run `make plugin`"


def test_manifest_ships_one_archive_for_linux_and_darwin_with_license() -> None:
    doc = yaml.safe_load(MANIFEST.read_text())
    (platform,) = doc["spec"]["platforms"]
    matched = {(os_, arch) for os_, arch in PAIRS if selector_matches(platform["selector"], {"os": os_, "arch": arch})}
    assert matched == {(os_, arch) for os_, arch in PAIRS if os_ in ("linux", "darwin")}
    assert platform["bin"] == "kubectl-emqx"
    assert platform["files"] == [{"from": "kubectl-emqx", "to": "."}, {"from": "LICENSE", "to": "."}]
    assert platform["uri"].endswith(f"/v{__version__}/kubectl-emqx_v{__version__}.tar.gz")
    assert "python3 >= 3.11" in doc["spec"]["caveats"]


def test_rules_catch_broken_manifests(tmp_path: Path) -> None:
    doc = yaml.safe_load(MANIFEST.read_text())
    platform = doc["spec"]["platforms"][0]
    platform["sha256"] = platform["sha256"].upper()  # krew's own docs example; its validator refuses it
    platform["files"] = [{"from": "kubectl-emqx", "to": "."}]
    platform["selector"] = {"matchLabels": {"os": "linux"}}
    doc["spec"]["platforms"] += [
        dict(platform, selector={"matchLabels": {"os": "darwin", "libc": "musl"}}),
        dict(platform, selector={"matchExpressions": [{"key": "os", "operator": "In", "values": ["linux"]}]}),
    ]
    doc["spec"]["version"] = "0.1.0"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(doc))
    problems = manifest_problems(path)
    for expected in ("name 'emqx'", "version '0.1.0'", "platforms[0].sha256", "platforms[0]: no LICENSE among files",
                     "platforms[1].selector keys ['libc', 'os']", "platforms[1] matches no supported os/arch",
                     "platforms[2] overlaps another platform"):
        assert any(problem.startswith(expected) for problem in problems), (expected, problems)


def test_license_is_apache_2() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Apache-2.0" in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("requirement", build_plugin.runtime_requirements())
def test_lock_pins_every_runtime_dependency(requirement: str) -> None:
    pins = build_plugin.read_lock()
    parsed = Requirement(requirement)
    name = build_plugin.canonical(parsed.name)
    assert name in pins, f"{name} missing from the plugin's lock: run `python -m dist_tools.build_plugin lock`"
    assert parsed.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])


def test_lock_leaves_out_the_asyncio_stack() -> None:
    pins = build_plugin.read_lock()
    assert not {"aiohttp", "multidict", "yarl", "frozenlist", "propcache"} & set(pins)
    assert "pyyaml" in pins and "kubernetes" in pins
    for name, version in pins.items():
        assert re.fullmatch(r"[a-z0-9-]+", name) and re.fullmatch(r"[\w.+]+", version), (name, version)


def test_versions_agree() -> None:
    assert build_plugin.plugin_version() == __version__
    assert f'version = "{__version__}"' in (REPO / "pyproject.toml").read_text()


def test_supported_pairs_cover_the_selector_space() -> None:
    # sanity of the helper itself: matchLabels and matchExpressions agree
    for os_, arch in product(SUPPORTED, ("amd64", "arm64")):
        labels = {"os": os_, "arch": arch}
        assert selector_matches({"matchLabels": {"os": os_}}, labels)
        assert selector_matches({"matchExpressions": [{"key": "os", "operator": "In", "values": [os_]}]}, labels)
        assert not selector_matches({"matchExpressions": [{"key": "os", "operator": "NotIn", "values": [os_]}]}, labels)

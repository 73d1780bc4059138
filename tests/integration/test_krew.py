"""Issue 9: the krew archive is built here, validated by krew's own validator, installed by the real
krew (offline: --manifest --archive), run through the real kubectl against the sandbox, and
uninstalled by krew."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from dist_tools import build_plugin
from dist_tools.krew import KrewHome
from kubectl_emqx import __version__
from sandbox import build as sandbox_build
from sandbox import cluster, operator_process

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tools() -> Path:
    directory = sandbox_build.bin_dir()
    for name in ("kubectl", "kubectl-krew", "validate-krew-manifest"):
        if not (directory / name).exists():
            pytest.fail(f"{directory / name} is missing: run `python -m sandbox build`")
    return directory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> build_plugin.Result:
    out = tmp_path_factory.mktemp("plugin")
    return build_plugin.build(out, out / "emqx.yaml")  # validate-krew-manifest wants <name>.yaml


def test_archive_holds_the_plugin_and_license_and_builds_reproducibly(
    built: build_plugin.Result, tmp_path: Path
) -> None:
    with tarfile.open(built.archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert sorted(members) == ["LICENSE", "kubectl-emqx"]
    assert members["kubectl-emqx"].mode == 0o755 and members["kubectl-emqx"].isfile()
    with zipfile.ZipFile(built.zipapp) as bundle:
        names = bundle.namelist()
    assert "__main__.py" in names and "site/kubectl_emqx/cli/main.py" in names
    assert not [name for name in names if name.endswith(build_plugin.EXTENSION_SUFFIXES)]
    assert not [name for name in names if name.startswith(("site/kubernetes/aio/", "site/aiohttp/"))]
    again = build_plugin.build(tmp_path, None)
    assert again.sha256 == built.sha256 and again.build_id == built.build_id


def test_validate_krew_manifest_passes(built: build_plugin.Result, tools: Path) -> None:
    assert built.manifest is not None
    completed = subprocess.run(
        [str(tools / "validate-krew-manifest"), "-manifest", str(built.manifest), "-skip-install"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, f"{built.manifest}: {completed.stderr}"
    # The manifest names the archive the same build wrote, by its sha256 (filled in at build time).
    platform = yaml.safe_load(built.manifest.read_text())["spec"]["platforms"][0]
    assert platform["sha256"] == built.sha256 == build_plugin.sha256_file(built.archive)


def test_krew_installs_the_plugin_which_works_against_the_cluster_and_uninstalls(
    built: build_plugin.Result, tools: Path, sandbox: cluster.SandboxState, namespace: str, tmp_path: Path
) -> None:
    assert built.manifest is not None
    home = KrewHome(tmp_path / "krew", tools, tmp_path / "cache", sandbox.kubeconfig)
    installed = home.install(built.manifest, built.archive)
    assert "Installed plugin: emqx" in installed.stdout + installed.stderr
    store = home.root / "store" / "emqx" / f"v{__version__}"
    assert home.link.is_symlink() and Path(os.path.realpath(home.link)) == store / "kubectl-emqx"
    assert (store / "LICENSE").is_file()
    assert str(home.link) in home.run("kubectl", "plugin", "list").stdout

    version = home.run("kubectl", "emqx", "version")
    assert f"Plugin:   {__version__}" in version.stdout and "Operator:" in version.stdout
    assert (home.cache / built.build_id / ".complete").is_file()  # the first run unpacked it

    operator_process.install_crd(sandbox)
    home.run("kubectl", "emqx", "create", "demo", "--cores", "1", "--replicants", "0", "-n", namespace)
    listed = home.run("kubectl", "emqx", "list", "-n", namespace, "-o", "json")
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    assert [(row["name"], row["namespace"], row["cores"]["desired"]) for row in rows] == [("demo", namespace, 1)]
    assert "demo" in home.run("kubectl", "emqx", "list", "-n", namespace).stdout
    # bytecode is cached next to the unpacked sources, for the later runs
    assert list((home.cache / built.build_id / "kubernetes" / "client" / "__pycache__").glob("*.pyc"))

    # completion, as the manifest's caveats set it up: kubectl >= 1.26 calls kubectl_complete-emqx
    (home.root / "bin" / "kubectl_complete-emqx").symlink_to("kubectl-emqx")
    assert "status\t" in home.run("kubectl", "__complete", "emqx", "sta").stdout
    names = home.run("kubectl", "__complete", "emqx", "status", "-n", namespace, "").stdout.splitlines()
    assert names[0] == "demo"

    uninstalled = home.uninstall()
    assert "Uninstalled plugin: emqx" in uninstalled.stdout + uninstalled.stderr
    assert not home.link.exists() and not home.link.is_symlink() and not store.exists()
    gone = home.run("kubectl", "emqx", "version", check=False)
    assert gone.returncode != 0

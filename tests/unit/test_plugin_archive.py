"""The plugin archive's launcher (dist_tools/bootstrap.py) and the build's pure steps, on a tiny
stand-in plugin: first-run extraction, bytecode caching, isolation from site-packages, the
completion entry point, fallbacks, reproducibility and pruning. The real archive is built and
installed with krew in tests/integration/test_krew.py."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dist_tools import build_plugin
from dist_tools.krew import base_python

PROBE = """
import json, site, sys
def main():
    print(json.dumps({{"entry": "{entry}", "argv": sys.argv[1:], "file": __file__, "path": sys.path,
                      "site_packages": site.getsitepackages() + [site.getusersitepackages()],
                      "version": list(sys.version_info[:2])}}))
"""


def make_site(root: Path, marker: str = "one") -> Path:
    site = root / "site"
    package = site / "kubectl_emqx" / "cli"
    package.mkdir(parents=True)
    (site / "kubectl_emqx" / "__init__.py").write_text(f"MARKER = {marker!r}\n")
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(PROBE.format(entry="main"))
    (package / "completion.py").write_text(PROBE.format(entry="completion"))
    return site


def make_archive(tmp_path: Path, marker: str = "one") -> tuple[Path, str]:
    work = tmp_path / f"build-{marker}"
    site = make_site(work, marker)
    archive = work / "kubectl-emqx"
    ident, _, _ = build_plugin.build_zipapp(site, archive)
    return archive, ident


def shim_dir(tmp_path: Path, python: Path, name: str = "python3") -> Path:
    """A directory holding only `name` -> python."""
    shim = tmp_path / f"shim-{name}-{python.parent.parent.name}"
    shim.mkdir(exist_ok=True)
    if not (shim / name).exists():
        (shim / name).symlink_to(python)
    return shim


def run(executable: Path, *args: str, tmp_path: Path, python: Path | None = None, **env: str) -> dict[str, Any]:
    """Execute the archive (through its #! line) with python3 -> `python` first on PATH."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBECTL_EMQX_", "PYTHON"))}
    path = os.pathsep.join([str(shim_dir(tmp_path, python or base_python())), "/usr/bin", "/bin"])
    full_env.update(PATH=path, KUBECTL_EMQX_CACHE_DIR=str(tmp_path / "cache"))
    full_env.update(env)
    completed = subprocess.run([str(executable), *args], capture_output=True, text=True, env=full_env, timeout=60,
                               check=False)
    result = {"rc": completed.returncode, "stderr": completed.stderr}
    if completed.returncode == 0:
        result.update(json.loads(completed.stdout))
    return result


def test_first_run_extracts_and_later_runs_reuse_the_tree_and_its_bytecode(tmp_path: Path) -> None:
    archive, ident = make_archive(tmp_path)
    tree = tmp_path / "cache" / ident
    first = run(archive, "list", "-A", tmp_path=tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert first["rc"] == 0, first["stderr"]
    assert first["entry"] == "main" and first["argv"] == ["list", "-A"]
    assert first["file"] == str(tree / "kubectl_emqx" / "cli" / "main.py")
    assert (tree / ".complete").read_text().strip() == ident
    # bytecode is cached in the private tree even where PYTHONDONTWRITEBYTECODE is set
    assert list((tree / "kubectl_emqx" / "cli" / "__pycache__").glob("main.*.pyc"))
    stamp = (tree / ".complete").stat().st_mtime_ns
    second = run(archive, "version", tmp_path=tmp_path)
    assert second["file"] == first["file"] and second["argv"] == ["version"]
    assert (tree / ".complete").stat().st_mtime_ns == stamp
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [ident]


def test_imports_only_the_archive_and_the_standard_library(tmp_path: Path) -> None:
    archive, ident = make_archive(tmp_path)
    result = run(archive, tmp_path=tmp_path)
    assert result["path"][0] == str(tmp_path / "cache" / ident)
    assert not set(result["path"]) & set(result["site_packages"])
    assert str(archive) not in result["path"]


def test_called_as_kubectl_complete_emqx_it_completes(tmp_path: Path) -> None:
    archive, _ = make_archive(tmp_path)
    link = tmp_path / "kubectl_complete-emqx"
    link.symlink_to(archive)
    result = run(link, "sta", tmp_path=tmp_path)
    assert result["entry"] == "completion" and result["argv"] == ["sta"]


def test_unwritable_cache_falls_back_to_the_archive(tmp_path: Path) -> None:
    archive, _ = make_archive(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = run(archive, "version", tmp_path=tmp_path, KUBECTL_EMQX_CACHE_DIR=str(blocker / "cache"))
    assert result["rc"] == 0
    assert result["file"] == str(archive / "site" / "kubectl_emqx" / "cli" / "main.py")
    assert "running from the archive" in result["stderr"]
    forced = run(archive, tmp_path=tmp_path, KUBECTL_EMQX_NO_EXTRACT="1")
    assert forced["file"].startswith(str(archive)) and not (tmp_path / "cache").exists()


def test_a_new_build_replaces_the_old_tree_but_not_extractions_in_progress(tmp_path: Path) -> None:
    old, old_id = make_archive(tmp_path, "one")
    new, new_id = make_archive(tmp_path, "two")
    assert old_id != new_id
    run(old, tmp_path=tmp_path)
    in_progress = tmp_path / "cache" / ".extract-other-process"
    in_progress.mkdir()
    assert run(new, tmp_path=tmp_path)["rc"] == 0
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted([new_id, in_progress.name])


def test_zipapp_and_tarball_are_reproducible(tmp_path: Path) -> None:
    site = make_site(tmp_path / "a")
    outputs = []
    for name in ("x", "y"):
        zipapp, tarball = tmp_path / f"{name}-kubectl-emqx", tmp_path / f"{name}.tar.gz"
        ident, unpacked, files = build_plugin.build_zipapp(site, zipapp)
        os.utime(site / "kubectl_emqx" / "__init__.py", (1, 1))  # mtimes must not matter
        build_plugin.build_tarball([("kubectl-emqx", zipapp, 0o755), ("LICENSE", build_plugin.LICENSE, 0o644)],
                                   tarball)
        outputs.append((ident, zipapp.read_bytes(), build_plugin.sha256_file(tarball)))
        assert files == 4 and unpacked > 0 and os.access(zipapp, os.X_OK)
    assert outputs[0] == outputs[1]
    assert zipapp.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_prune_keeps_pure_python_and_the_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for relative in ("yaml/__init__.py", "yaml/_yaml.cpython-311-x86_64-linux-gnu.so", "yaml/cyaml.py",
                     "kubernetes/aio/client/rest.py", "kubernetes/config/kube_config.py",
                     "kubernetes/config/kube_config_test.py", "certifi/tests/test_x.py", "bin/normalizer",
                     "charset_normalizer/md.cpython-311-x86_64-linux-gnu.so", "charset_normalizer/md.py",
                     "kubectl_emqx/tests/keep.py", "pkg/__pycache__/x.cpython-311.pyc", "_native.abi3.so"):
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    removed = build_plugin.prune(site)
    left = sorted(path.relative_to(site).as_posix() for path in site.rglob("*") if path.is_file())
    assert left == ["charset_normalizer/md.py", "kubectl_emqx/tests/keep.py", "kubernetes/config/kube_config.py",
                    "yaml/__init__.py", "yaml/cyaml.py"]
    assert "kubernetes/aio/" in removed and "_native.abi3.so" in removed


def old_python() -> Path | None:
    names = [shutil.which(f"python3.{minor}") for minor in range(6, 11)]
    names += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[6-9].*/bin/python3")))
    names += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python3")))
    for name in names:
        if not name:
            continue
        real = Path(os.path.realpath(name))
        try:
            with open(real, "rb") as handle:
                if handle.read(4) == b"\x7fELF":  # an interpreter, not a version manager's shim script
                    return real
        except OSError:
            continue
    return None


@pytest.mark.skipif(old_python() is None, reason="no Python older than 3.11 on this machine")
def test_an_old_python3_explains_or_hands_over_to_a_newer_one(tmp_path: Path) -> None:
    old = old_python()
    assert old is not None
    archive, _ = make_archive(tmp_path)
    only_old = str(shim_dir(tmp_path, old))  # no python3.11+ anywhere on PATH
    refused = run(archive, tmp_path=tmp_path, python=old, PATH=only_old)
    assert refused["rc"] == 1
    assert "needs Python >= 3.11" in refused["stderr"] and "KUBECTL_EMQX_PYTHON" in refused["stderr"]
    link = tmp_path / "kubectl_complete-emqx"
    link.symlink_to(archive)
    handed = run(link, "sc", tmp_path=tmp_path, python=old, PATH=only_old, KUBECTL_EMQX_PYTHON=str(base_python()))
    assert handed["rc"] == 0, handed["stderr"]
    assert handed["version"] == list(sys.version_info[:2])
    assert handed["entry"] == "completion" and handed["argv"] == ["sc"]
    newer = shim_dir(tmp_path, base_python(), f"python3.{sys.version_info[1]}")
    found = run(archive, "version", tmp_path=tmp_path, python=old, PATH=f"{only_old}{os.pathsep}{newer}")
    assert found["rc"] == 0, found["stderr"]
    assert found["version"] == list(sys.version_info[:2]) and found["argv"] == ["version"]

"""Issue 9, the pip/pipx path: the project's wheel installed into a fresh virtual environment (from
PyPI, as pipx would) gives working `kubectl emqx` and `kubectl_complete-emqx` commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dist_tools.krew import base_python
from kubectl_emqx import __version__

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "kubectl_emqx", "operator/emqx_operator")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout,
                               stdin=subprocess.DEVNULL, check=False)
    assert completed.returncode == 0, f"{' '.join(args)} exited {completed.returncode}:\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the build writes into its tree)."""
    work = tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        source, target = REPO / name, work / "src" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
        "--wheel-dir", str(work / "dist"), str(work / "src"))
    (built,) = (work / "dist").glob("kubectl_emqx-*.whl")
    return built


def test_fresh_venv_install_gives_a_working_kubectl_emqx(
    wheel: Path, kubeconfig: str, bin_dir: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    run(str(base_python()), "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    run(*pip, "install", "--quiet", str(wheel))
    run(*pip, "check")
    # pipx's layout: the venv stays out of PATH; its entry points are linked into one bin directory
    local_bin = tmp_path / "local-bin"
    local_bin.mkdir()
    for name in ("kubectl-emqx", "kubectl_complete-emqx"):
        (local_bin / name).symlink_to(venv / "bin" / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=os.pathsep.join([str(local_bin), str(bin_dir), "/usr/bin", "/bin"]), KUBECONFIG=kubeconfig)

    version = run("kubectl", "emqx", "version", env=env, timeout=60)
    assert f"Plugin:   {__version__}" in version.stdout and "Operator:" in version.stdout
    plugins = run("kubectl", "plugin", "list", env=env, timeout=60).stdout
    assert str(local_bin / "kubectl-emqx") in plugins
    # kubectl >= 1.26 completes plugin arguments through kubectl_complete-<name>
    assert "create\t" in run("kubectl", "__complete", "emqx", "", env=env, timeout=60).stdout

"""Drive the real krew offline for tests and benchmarks: a private KREW_ROOT, `install --manifest
--archive` (no index, no network), and a stand-in index so that `list` and `uninstall` work.

krew's `list`/`uninstall` refuse to run until `kubectl krew update` has cloned the index (git and
network); they only check that `$KREW_ROOT/index/default/.git` exists, so an empty one does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dist_tools.build_plugin import EXECUTABLE, PLUGIN_NAME


def base_python() -> Path:
    """The interpreter behind this (virtual) environment: what a user's python3 would be, with none
    of this venv's packages."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))


@dataclass
class KrewHome:
    """A private krew root, plus the directory the installed plugin extracts itself to."""

    root: Path
    bin_dir: Path           # holds kubectl, kubectl-krew, validate-krew-manifest
    cache: Path             # the plugin's first-run cache (KUBECTL_EMQX_CACHE_DIR)
    kubeconfig: str | None = None
    python: Path | None = None  # put first on PATH as `python3`; default: base_python()

    def env(self, **extra: str) -> dict[str, str]:
        shim = self.root / "python-shim"
        shim.mkdir(parents=True, exist_ok=True)
        link = shim / "python3"
        target = self.python or base_python()
        if not link.is_symlink() or Path(os.readlink(link)) != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        path = os.pathsep.join([str(self.root / "bin"), str(self.bin_dir), str(shim), os.environ.get("PATH", "")])
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("KREW_", "KUBECTL_EMQX_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(KREW_ROOT=str(self.root), KREW_NO_UPGRADE_CHECK="1", PATH=path,
                   KUBECTL_EMQX_CACHE_DIR=str(self.cache))
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        env.update(extra)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command (`kubectl ...`) with this home's environment (plus `env`)."""
        completed = subprocess.run(list(args), env=self.env(**(env or {})), stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, timeout=timeout, check=False)
        if check and completed.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"
            )
        return completed

    def install(self, manifest: Path, archive: Path) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={archive}")

    def fake_index(self) -> None:
        (self.root / "index" / "default" / ".git").mkdir(parents=True, exist_ok=True)

    def uninstall(self) -> subprocess.CompletedProcess[str]:
        self.fake_index()
        return self.run("kubectl", "krew", "uninstall", PLUGIN_NAME)

    @property
    def link(self) -> Path:
        return self.root / "bin" / EXECUTABLE

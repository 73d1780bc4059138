"""The real Helm (built by `python -m sandbox build` like the control plane) with a private home."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "emqx-operator"


class Helm:
    def __init__(self, binary: Path, home: Path, kubeconfig: str | None = None) -> None:
        self.binary, self.home, self.kubeconfig = binary, home, kubeconfig

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HELM_")}
        env.update(HELM_CACHE_HOME=str(self.home / "cache"), HELM_CONFIG_HOME=str(self.home / "config"),
                   HELM_DATA_HOME=str(self.home / "data"))
        if self.kubeconfig:
            env["KUBECONFIG"] = self.kubeconfig
        else:
            env.pop("KUBECONFIG", None)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run([str(self.binary), *args], env=self.env(), capture_output=True, text=True,
                                   timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if check and completed.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {completed.returncode}:\n"
                                 f"{completed.stdout}{completed.stderr}")
        return completed

    def template(self, namespace: str, *args: str, values: Path | None = None,
                 release: str = "emqx-operator") -> list[dict[str, Any]]:
        """`helm template` (no cluster) with the CRDs, as documents."""
        extra = ["--values", str(values)] if values else []
        text = self.run("template", release, str(CHART), "--namespace", namespace, "--include-crds",
                        *extra, *args).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

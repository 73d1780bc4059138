"""`kubectl emqx config …` against the real apiserver: invalid HOCON never writes; edits go through."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.emqx_helpers import cr, custom_api, get_emqx

pytestmark = pytest.mark.integration


def _plugin(kubeconfig: str, *args: str, env: dict[str, str] | None = None,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, KUBECONFIG=kubeconfig, **(env or {}))
    return subprocess.run([str(Path(sys.executable).parent / "kubectl-emqx"), *args], input=stdin,
                          capture_output=True, text=True, env=full_env, timeout=60)


def _version(api_client: Any, namespace: str) -> tuple[Any, Any]:
    """What a write by the plugin would change (status belongs to the operator, which may be running)."""
    obj = get_emqx(api_client, namespace, "cfg")
    return obj["metadata"]["generation"], obj["spec"]


def test_invalid_hocon_from_every_config_verb_writes_nothing(
    api_client: Any, namespace: str, kubeconfig: str, tmp_path: Path, sandbox: Any
) -> None:
    from sandbox import operator_process

    operator_process.install_crd(sandbox)
    custom_api(api_client).create_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", namespace, "emqxes", cr("cfg", config="log.console.level = warning\n"))
    before = _version(api_client, namespace)

    result = _plugin(kubeconfig, "config", "set", "cfg", "log.console = {level", "-n", namespace, "--yes")
    assert result.returncode != 0 and "line" in result.stderr, result.stderr

    bad = tmp_path / "bad.conf"
    bad.write_text("log {\n  console.level = info\n")
    result = _plugin(kubeconfig, "config", "apply", "cfg", "-f", str(bad), "-n", namespace, "--yes")
    assert result.returncode != 0 and "line" in result.stderr and "column" in result.stderr, result.stderr

    editor = tmp_path / "editor.py"
    editor.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import pathlib, sys
        path = pathlib.Path(sys.argv[-1])
        text = path.read_text()
        if "invalid HOCON" in text:  # second opening: the user gives up (leaves it unchanged)
            sys.exit(0)
        path.write_text(text + "\\nbroken = {{\\n")
        """))
    editor.chmod(0o755)
    result = _plugin(kubeconfig, "config", "edit", "cfg", "-n", namespace, "--yes",
                     env={"EDITOR": str(editor), "VISUAL": str(editor)})
    assert "invalid HOCON" in result.stderr, result.stderr
    assert _version(api_client, namespace) == before, "invalid HOCON must not be written"

    good = tmp_path / "good.conf"
    good.write_text("log.console.level = debug\n")
    result = _plugin(kubeconfig, "config", "apply", "cfg", "-f", str(good), "-n", namespace, "--yes")
    assert result.returncode == 0, result.stderr
    assert "live" in result.stderr
    assert "debug" in get_emqx(api_client, namespace, "cfg")["spec"]["config"]["data"]

    result = _plugin(kubeconfig, "config", "set", "cfg", "node.process_limit=1048576", "-n", namespace, "--yes")
    assert result.returncode == 0, result.stderr
    assert "restart" in result.stderr
    data = get_emqx(api_client, namespace, "cfg")["spec"]["config"]["data"]
    assert "process_limit" in data and "debug" in data

"""Issue 18: the operator image's Python environment, built here exactly as operator/Dockerfile builds
it (its COPY and RUN lines replayed into a clean venv on the base image's Python minor, packages
from PyPI), holds exactly the pinned lock, and runs the operator: on a ServiceAccount token with
the install's RBAC and the Deployment's args and env, it takes an EMQX cluster to Ready. What needs
a container runtime (the image's layers, USER, a read-only root filesystem) is checked by parsing
in tests/unit/test_install.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from dist_tools import build_plugin
from kubectl_emqx import __version__
from kubectl_emqx.domain import install
from sandbox import operator_process
from tests.emqx_helpers import cr, custom_api, wait_ready
from tests.image_helpers import BuiltVenv, base_python_minor, build_venv_as_the_image, python_for_minor
from tests.install_helpers import InstalledOperator, deployment_container, plugin, service_account_kubeconfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltVenv:
    minor = base_python_minor()
    python = python_for_minor(minor)
    if python is None:
        pytest.fail(f"the image's base is Python {minor}: python{minor} is needed to build its venv here")
    return build_venv_as_the_image(tmp_path_factory.mktemp("image"), python)


def test_the_venv_holds_exactly_the_lock_and_no_pip(built: BuiltVenv) -> None:
    installed = json.loads(built.python(
        "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
        "for d in m.distributions()}))"))
    found = {build_plugin.canonical(name): version for name, version in installed.items()}
    assert found == {**build_plugin.read_lock(), "kubectl-emqx": __version__}, "exactly the pins, plus the package"
    assert not (built.venv / "bin" / "pip").exists()
    assert any("pip check" in run for run in built.runs), "the build checks the pins satisfy every requirement"
    # Both packages come from the venv, never from the working tree, with bytecode compiled at build
    # time (the image runs with a read-only root filesystem and PYTHONDONTWRITEBYTECODE=1).
    located = json.loads(built.python(
        "import json, emqx_operator, kubectl_emqx; print(json.dumps([emqx_operator.__file__, kubectl_emqx.__file__]))"))
    for path in located:
        assert Path(path).is_relative_to(built.venv), path
        package = Path(path).parent
        sources = {p.stem for p in package.glob("*.py")}
        compiled = {p.name.split(".")[0] for p in (package / "__pycache__").glob("*.cpython-*.pyc")}
        assert sources <= compiled, sorted(sources - compiled)
    assert built.runtime_env.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_the_operator_from_that_venv_runs_an_emqx_cluster_to_ready(
    built: BuiltVenv, api_client: Any, kubeconfig: str, sandbox: Any, solo_namespace: str, tmp_path: Path,
) -> None:
    operator_namespace = f"solo-img-{uuid.uuid4().hex[:8]}"
    operator_process.install_crd(sandbox)
    plugin(kubeconfig, "install", "-n", operator_namespace, "--watch-namespace", solo_namespace, "--skip-crds")
    operator = None
    try:
        token = service_account_kubeconfig(api_client, kubeconfig, operator_namespace, install.NAME, tmp_path)
        container = deployment_container(api_client, operator_namespace)
        operator = InstalledOperator(sandbox, token, container, operator_namespace, executable=str(built.operator),
                                     env=built.runtime_env)
        custom_api(api_client).create_namespaced_custom_object(
            "apps.emqx.io", "v2beta1", solo_namespace, "emqxes", cr("imaged", cores=2, replicants=1))
        wait_ready(api_client, solo_namespace, "imaged")
        log = operator.log_text()
        assert "forbidden" not in log.lower() and "Traceback" not in log, log
        assert operator.metrics()["emqx_operator_leader"] == 1
        rss = operator.rss_bytes()
        limit = install.DEFAULT_RESOURCES["limits"]["memory"]
        assert limit.endswith("Mi") and rss < int(limit[:-2]) * 2**20, f"RSS {rss / 2**20:.0f} MiB over {limit}"
        print(f"\noperator from the image's venv: RSS {rss / 2**20:.1f} MiB with one 2+1 cluster")
    finally:
        if operator is not None:
            operator.stop()
        plugin(kubeconfig, "uninstall", "-n", operator_namespace, check=False)

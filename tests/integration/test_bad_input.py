"""Bad input, counted (issue 17): every malformed or hostile resource and plugin invocation of
tests/bad_inputs.py (and the CRD rows of tests/unit/bad_crs.py) gets a one-line error naming the
field, writes nothing, and the operator stays healthy. The count is printed."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.bad_inputs import API, PLUGIN, TARGET, BadInput, cr
from tests.emqx_helpers import condition, custom_api, get_emqx, wait_ready
from tests.helpers import wait_for
from tests.plugin_helpers import Outcome, PluginRunner
from tests.unit.bad_crs import BAD_CRS

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "apps.emqx.io", "v2beta1", "emqxes"
OWNED = ("config_map", "secret", "service", "pod", "persistent_volume_claim")


def _owned(api_client: Any, namespace: str, name: str) -> list[str]:
    """Everything labelled as the resource's (what the operator would have written)."""
    from kubernetes import client

    selector = f"apps.emqx.io/instance={name}"
    core, apps, policy = client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.PolicyV1Api(api_client)
    found = []
    for kind in OWNED:
        found += [f"{kind}/{o.metadata.name}" for o in getattr(core, f"list_namespaced_{kind}")(
            namespace, label_selector=selector).items]
    found += [f"statefulset/{o.metadata.name}" for o in apps.list_namespaced_stateful_set(
        namespace, label_selector=selector).items]
    found += [f"deployment/{o.metadata.name}" for o in apps.list_namespaced_deployment(
        namespace, label_selector=selector).items]
    found += [f"pdb/{o.metadata.name}" for o in policy.list_namespaced_pod_disruption_budget(
        namespace, label_selector=selector).items]
    return found


def _error_names(lines: list[str], field: str) -> bool:
    """The error (what follows the plan `upgrade` prints first) names the field in one line: a lone
    last `error: ...` line, or the plugin's list of domain problems (`error: the change is invalid;
    nothing was written:` and one `- field: ...` line each)."""
    start = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    if start is None:
        return False
    error = lines[start:]
    if len(error) > 1 and not (error[0].endswith("nothing was written:")
                               and all(line.lstrip().startswith("- ") for line in error[1:])):
        return False
    return any(field in line for line in error)


def _created(api_client: Any, namespace: str, row: BadInput, name: str) -> str:
    """Create the row's resource; '' when the API server refused it (with the field named), else the
    reason the row failed."""
    from kubernetes.client.rest import ApiException

    body = json.loads(json.dumps(row.body))
    body["metadata"].setdefault("name", name)
    group, version = body["apiVersion"].split("/")
    try:
        custom_api(api_client).create_namespaced_custom_object(group, version, namespace, PLURAL, body)
    except ApiException as exc:
        message = json.loads(exc.body or "{}").get("message", "")
        if row.refused_by != "apiserver":
            return f"refused by the API server: {message}"
        if exc.status not in (400, 422) or row.field not in message or "\n" in message:
            return f"{exc.status}: {message!r} does not name {row.field} in one line"
        return ""
    return "accepted by the API server" if row.refused_by == "apiserver" else "created"


def test_bad_input_gets_one_line_naming_the_field_writes_nothing_and_the_operator_stays_healthy(
    api_client: Any, solo_namespace: str, solo_operator: Any, bin_dir: Path, kubeconfig: str, tmp_path: Path
) -> None:
    namespace = solo_namespace
    operator = solo_operator()
    failures: list[str] = []
    counted = {"apiserver": 0, "operator": 0, "plugin": 0}

    crd_rows = [BadInput(f"CRD: {what}", expected, "apiserver", body) for what, body, expected in BAD_CRS]
    waiting: list[tuple[BadInput, str]] = []
    for index, row in enumerate(crd_rows + API):
        name = f"bad-{index}"
        outcome = _created(api_client, namespace, row, name)
        if outcome == "created":
            waiting.append((row, name))
        elif outcome:
            failures.append(f"{row.what}: {outcome}")
        else:
            counted["apiserver"] += 1

    # The operator's verdicts: Valid=False for generation 1, naming the field in one line, nothing owned.
    def judged() -> bool:
        return all((c := condition(get_emqx(api_client, namespace, name), "Valid")) and c["status"] == "False"
                   for _, name in waiting)

    try:
        wait_for(judged, 120, "the operator to refuse every invalid resource")
    except AssertionError:
        pass  # each row is reported below
    for row, name in waiting:
        obj = get_emqx(api_client, namespace, name)
        valid = condition(obj, "Valid") or {}
        message = str(valid.get("message") or "")
        if valid.get("status") != "False" or row.field not in message or "\n" in message:
            failures.append(f"{row.what}: Valid is {valid.get('status')}: {message!r} (wanted {row.field})")
            continue
        if (obj.get("status") or {}).get("phase") != "Invalid":
            failures.append(f"{row.what}: phase {(obj.get('status') or {}).get('phase')}")
        owned = _owned(api_client, namespace, name)
        if owned:
            failures.append(f"{row.what}: the operator wrote {owned}")
            continue
        counted["operator"] += 1

    # Plugin invocations, against an existing resource where they change one.
    body = cr(name=TARGET)
    custom_api(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_ready(api_client, namespace, TARGET, timeout=120)
    generation = get_emqx(api_client, namespace, TARGET)["metadata"]["generation"]
    plugin = PluginRunner(bin_dir / "kubectl", kubeconfig)
    for index, row in enumerate(PLUGIN):
        folder = tmp_path / f"row-{index}"
        folder.mkdir()
        for file_name, text in row.files.items():
            (folder / file_name).write_text(text)
        argv = [arg.replace("{dir}", str(folder)) for arg in row.argv]
        before = {o["metadata"]["name"] for o in custom_api(api_client).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL)["items"]}
        outcome: Outcome = plugin(*argv, "-n", namespace, timeout=120)
        after = {o["metadata"]["name"] for o in custom_api(api_client).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL)["items"]}
        if outcome.code == 0 or outcome.stdout or "Traceback" in outcome.stderr:
            failures.append(f"{row.what}: {outcome.describe()}")
        elif not _error_names(outcome.error_lines, row.field):
            failures.append(f"{row.what}: the error does not name {row.field!r} in one line: {outcome.error_lines}")
        elif after != before or get_emqx(api_client, namespace, TARGET)["metadata"]["generation"] != generation:
            failures.append(f"{row.what}: something was written ({sorted(after - before)})")
        else:
            counted["plugin"] += 1

    total = sum(counted.values())
    print(f"\nbad inputs refused: {total} ({counted['apiserver']} by the API server, {counted['operator']} by "
          f"the operator with Valid=False, {counted['plugin']} by the plugin); failures: {len(failures)}")
    assert not failures, "\n".join(failures)
    assert total >= 60

    # The operator is healthy: alive, live, no traceback in its log, and a good resource still settles.
    assert operator.proc is not None and operator.proc.poll() is None, "the operator exited"
    assert operator.handle is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.live_port}/healthz", timeout=10) as response:
        assert response.status == 200
    log = Path(operator.handle.log).read_text(errors="replace")
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 2000):][:6000]
    patched = {"spec": {"coreTemplate": {"spec": {"replicas": 2}}}}
    custom_api(api_client).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, TARGET, patched)
    time.sleep(1)
    wait_ready(api_client, namespace, TARGET, timeout=120)

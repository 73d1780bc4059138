"""Day-2 operations as users run them (the real kubectl with the plugin on PATH, the operator and the
EMQX simulator behind the real API server): `restart` (surviving an operator kill, one node only),
`rebalance` (refused on Opensource, carried out on Enterprise), `backup`/`restore` (a round trip)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emqx_helpers import cr, create_emqx, get_emqx, patch_emqx, pod_uids, wait_condition, wait_ready
from tests.helpers import wait_for
from tests.plugin_helpers import PluginRunner, assert_one_line_error

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plugin(bin_dir: Path, kubeconfig: str) -> PluginRunner:
    return PluginRunner(bin_dir / "kubectl", kubeconfig)


def _boots(emqx_sim: Any, since: int, namespace: str) -> list[str]:
    """Pods (by name) whose EMQX node booted since the mark, in order."""
    return [str(e["pod"]).split("/", 1)[1] for e in emqx_sim.boot_log(since=since)
            if e["event"] == "booted" and str(e.get("pod") or "").startswith(f"{namespace}/")]


# --- restart -------------------------------------------------------------------------------------


def test_restart_survives_an_operator_kill_halfway_and_restarts_every_node_exactly_once(
    plugin: PluginRunner, api_client: Any, solo_namespace: str, solo_operator: Any, emqx_sim: Any
) -> None:
    namespace = solo_namespace
    op = solo_operator()
    create_emqx(api_client, namespace, cr("rs", cores=3, replicants=3))
    wait_ready(api_client, namespace, "rs")
    before = pod_uids(api_client, namespace, "rs")
    mark = emqx_sim.last_seq()
    started = time.monotonic()
    waiting = subprocess.Popen([str(plugin.kubectl), "emqx", "restart", "rs", "-n", namespace, "--wait"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plugin.env)

    def cores_restarted() -> int:
        now = pod_uids(api_client, namespace, "rs")
        return sum(1 for name, uid in before.items() if "-core-" in name and now.get(name) not in (None, uid))

    try:
        wait_for(lambda: cores_restarted() >= 2, 180, "two cores restarted", interval=0.05)
        op.kill()
        time.sleep(1)  # the restart request stays in the resource meanwhile
        op.start()
        out, err = waiting.communicate(timeout=600)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    elapsed = time.monotonic() - started
    assert waiting.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    assert "restart 6 node(s)" in err and "is Ready" in err
    body = get_emqx(api_client, namespace, "rs")
    assert body["status"]["restart"]["phase"] == "Done"
    after = pod_uids(api_client, namespace, "rs")
    assert not set(before.values()) & set(after.values()), "every pod was replaced"
    boots = _boots(emqx_sim, mark, namespace)
    assert sorted(b for b in boots if "-core-" in b) == ["rs-core-0", "rs-core-1", "rs-core-2"], boots
    replicant_boots = [b for b in boots if "-replicant-" in b]
    assert len(replicant_boots) == 3 and set(replicant_boots) == {n for n in after if "-replicant-" in n}, boots
    print(f"restart of 3+3 (fast kubelet, operator killed once): {elapsed:.1f}s")


def test_restart_of_one_node_touches_only_that_node(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    create_emqx(api_client, namespace, cr("one", cores=3, replicants=2))
    wait_ready(api_client, namespace, "one")
    before = pod_uids(api_client, namespace, "one")
    replicant = sorted(n for n in before if "-replicant-" in n)[0]

    preview = plugin.ok("restart", "one", "-n", namespace, "--dry-run")
    lines = preview.stdout.splitlines()
    assert "restart 5 node(s) (dry run, nothing written)" in lines[0]
    order = [line.split(". ", 1)[1].split(" ")[0] for line in lines if ". " in line]
    assert order[:3] == ["one-core-2", "one-core-1", "one-core-0"] and set(order[3:]) == {
        n for n in before if "-replicant-" in n}
    assert "restart" not in get_emqx(api_client, namespace, "one")["spec"]

    wrong = plugin("restart", "one", "-n", namespace, "--node", "one-core-7")
    assert_one_line_error(wrong, "--node one-core-7: no such node", "one-core-0")
    excluded = plugin("restart", "one", "-n", namespace, "--node", "one-core-1", "--role", "replicants")
    assert_one_line_error(excluded, "one-core-1 is a core", "--role replicants")
    assert plugin.complete("emqx", "restart", "one", "-n", namespace, "--node", "one-core")[:3] == [
        "one-core-0", "one-core-1", "one-core-2"]

    mark = emqx_sim.last_seq()
    plugin.ok("restart", "one", "-n", namespace, "--node", "one-core-1", "--wait", timeout=300)
    after = pod_uids(api_client, namespace, "one")
    changed = {name for name, uid in before.items() if after.get(name) != uid}
    assert changed == {"one-core-1"}, changed
    assert _boots(emqx_sim, mark, namespace) == ["one-core-1"]

    # A replicant by its EMQX node name: the Deployment replaces exactly that pod.
    node = next(n["node"] for n in get_emqx(api_client, namespace, "one")["status"]["emqxNodes"]
                if n.get("podName") == replicant)
    plugin.ok("restart", "one", "-n", namespace, "--node", node, "--wait", timeout=300)
    final = pod_uids(api_client, namespace, "one")
    assert replicant not in final and set(after) - {replicant} <= set(final)
    assert all(final[name] == after[name] for name in after if name != replicant)
    assert get_emqx(api_client, namespace, "one")["spec"]["restart"]["nodes"] == [replicant]


# --- rebalance -----------------------------------------------------------------------------------


def test_rebalance_is_refused_on_opensource_5_7_by_the_plugin_and_by_the_operator(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    create_emqx(api_client, namespace, cr("oss", image="emqx/emqx:5.7.2", cores=2, replicants=1))
    wait_ready(api_client, namespace, "oss")
    refused = plugin("rebalance", "oss", "-n", namespace)
    assert_one_line_error(refused, "Opensource 5.7.2 has no connection rebalance", "Enterprise", "5.9.0",
                          "nothing was written")
    assert "rebalance" not in get_emqx(api_client, namespace, "oss")["spec"]
    # Written another way (GitOps, kubectl), the operator refuses it as a condition and sends nothing.
    patch_emqx(api_client, namespace, "oss", {"spec": {"rebalance": {"at": "2026-01-01T00:00:00Z"}}})
    condition = wait_condition(api_client, namespace, "oss", "RebalanceAllowed", "False")
    assert condition["reason"] == "RebalanceUnsupported" and "Opensource 5.7.2" in condition["message"]
    status = get_emqx(api_client, namespace, "oss")["status"]
    assert status["rebalance"]["phase"] == "Refused"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_rebalance_moves_connections_on_enterprise_5_8_from_the_official_manifest(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, emqx_sim: Any, tmp_path: Path
) -> None:
    create_emqx(api_client, namespace, cr("ee", image="emqx/emqx-enterprise:5.8.0", cores=2, replicants=3))
    wait_ready(api_client, namespace, "ee")
    emqx_sim.set_clock_speed(10)
    replicants = sorted((n for n in get_emqx(api_client, namespace, "ee")["status"]["emqxNodes"]
                         if n.get("role") == "replicant" and n["node_status"] == "running"), key=lambda n: n["node"])
    busy = replicants[0]["node"]
    emqx_sim.set_connections(busy, 600)

    manifest = tmp_path / "rebalance.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "Rebalance", "metadata": {"name": "rb"},
        "spec": {"instanceName": "ee", "rebalanceStrategy": {
            "connEvictRate": 50, "sessEvictRate": 50, "waitTakeover": 2, "waitHealthCheck": 2,
            "absConnThreshold": 10, "relConnThreshold": "1.2", "absSessThreshold": 10, "relSessThreshold": "1.2"}},
    }))
    preview = plugin.ok("rebalance", "-f", str(manifest), "-n", namespace, "--dry-run")
    coordinator = f"emqx@ee-core-0.ee-headless.{namespace}.svc.cluster.local"
    assert f"coordinator: {coordinator}" in preview.stdout, preview.stdout
    assert "relConnThreshold 1.2," in preview.stdout and "waitTakeover 2," in preview.stdout
    assert "rebalance" not in get_emqx(api_client, namespace, "ee")["spec"]
    done = plugin.ok("rebalance", "-f", str(manifest), "-n", namespace, "--wait", timeout=300)
    assert "rebalance Completed" in done.stderr, done.stderr
    status = get_emqx(api_client, namespace, "ee")["status"]["rebalance"]
    assert status["phase"] == "Completed" and status["nodes"] == sorted(r["node"] for r in replicants)
    spread = {n["node"]: n["live_connections"] for n in emqx_sim.nodes() if n.get("node") in status["nodes"]}
    assert sum(spread.values()) == 600 and max(spread.values()) - min(spread.values()) <= 60, spread

    again = plugin("rebalance", "ee", "-n", namespace, "--stop")
    assert_one_line_error(again, "no rebalance is running", "Completed")



# --- backup / restore ----------------------------------------------------------------------------


class Emqx:
    """EMQX's API of one pod, straight to its IP (the sandbox's pod IPs are local), as the dashboard user."""

    def __init__(self, api_client: Any, namespace: str, name: str, pod: Any) -> None:
        import base64

        import httpx
        from kubernetes import client

        secret = client.CoreV1Api(api_client).read_namespaced_secret(f"{name}-bootstrap-api-key", namespace)
        password = base64.b64decode(secret.data["dashboard_password"]).decode()
        self.base = f"http://{pod.status.pod_ip}:18083/api/v5"
        self.http = httpx.Client(timeout=15)
        token = self.http.post(f"{self.base}/login", json={"username": "admin", "password": password}).json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def put_config(self, text: str) -> None:
        answer = self.http.put(f"{self.base}/configs", params={"mode": "merge"}, content=text,
                               headers={**self.headers, "Content-Type": "text/plain"})
        assert answer.status_code == 200, answer.text

    def config(self) -> str:
        return self.http.get(f"{self.base}/configs", headers={**self.headers, "Accept": "text/plain"}).text

    def api_keys(self) -> list[str]:
        return [item["name"] for item in self.http.get(f"{self.base}/api_key", headers=self.headers).json()]

    def create_api_key(self, name: str) -> None:
        assert self.http.post(f"{self.base}/api_key", json={"name": name}, headers=self.headers).status_code == 200

    def delete_api_key(self, name: str) -> None:
        assert self.http.delete(f"{self.base}/api_key/{name}", headers=self.headers).status_code == 204


def test_backup_and_restore_round_trip_brings_the_first_state_back_on_every_node(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, tmp_path: Path
) -> None:
    from tests.emqx_helpers import pods

    create_emqx(api_client, namespace, cr("bk", image="emqx/emqx:5.8.9", cores=3, replicants=0))
    wait_ready(api_client, namespace, "bk")
    nodes = [Emqx(api_client, namespace, "bk", pod) for pod in pods(api_client, namespace, "bk")]
    first = nodes[0]
    first.put_config("sysmon.vm.long_gc = 200ms\nalarm.size_limit = 900\n")
    first.create_api_key("ci")
    archive = tmp_path / "bk.tar.gz"  # not EMQX's own file name: restore uploads it under that name

    started = time.monotonic()
    made = plugin.ok("backup", "bk", "-n", namespace, "-f", str(archive))
    backup_seconds = time.monotonic() - started
    assert "API keys (emqx_app)" in made.stderr and "sysmon" in made.stderr, made.stderr
    assert archive.stat().st_size > 0

    first.put_config("sysmon.vm.long_gc = 900ms\nalarm.size_limit = 100\n")
    first.delete_api_key("ci")
    declined = plugin("restore", "bk", "-n", namespace, "-f", str(archive), stdin="n\n")
    assert declined.code != 0 and "long_gc = 900ms" in first.config().replace('"', "")
    preview = plugin.ok("restore", "bk", "-n", namespace, "-f", str(archive), "--dry-run")
    assert "from EMQX Opensource 5.8.9" in preview.stdout and "dry run" in preview.stdout

    started = time.monotonic()
    restored = plugin.ok("restore", "bk", "-n", namespace, "-f", str(archive), "--yes")
    restore_seconds = time.monotonic() - started
    assert "restored through bk-core-" in restored.stderr, restored.stderr
    for node in nodes:
        text = node.config().replace('"', "")
        assert "long_gc = 200ms" in text and "size_limit = 900" in text, text
        assert "ci" in node.api_keys()
    listing = first.http.get(f"{first.base}/data/files", headers=first.headers).json()
    assert listing["data"] == [], "the plugin leaves no archive behind on the nodes"
    print(f"backup {backup_seconds:.2f}s, restore {restore_seconds:.2f}s")


def test_restore_refusals_name_the_versions(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, tmp_path: Path
) -> None:
    import io
    import tarfile

    def archive(edition: str, version: str) -> Path:
        path = tmp_path / f"{edition}-{version}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            meta = f'edition = {edition}\nversion = "{version}"\n'.encode()
            info = tarfile.TarInfo("emqx-export-2026-01-01-00-00-00.000/META.hocon")
            info.size = len(meta)
            tar.addfile(info, io.BytesIO(meta))
        return path

    create_emqx(api_client, namespace, cr("old", image="emqx/emqx:5.3.2", cores=1, replicants=0))
    create_emqx(api_client, namespace, cr("ce", image="emqx/emqx:5.7.2", cores=1, replicants=0))
    wait_ready(api_client, namespace, "old")
    wait_ready(api_client, namespace, "ce")
    no_api = plugin("backup", "old", "-n", namespace, "-f", str(tmp_path / "x.tar.gz"))
    assert_one_line_error(no_api, "Opensource 5.3.2 has no data backup API", "5.4.0")
    newer = plugin("restore", "ce", "-n", namespace, "-f", str(archive("ce", "5.8.9")), "--yes")
    assert_one_line_error(newer, "runs EMQX Opensource 5.7.2", "from EMQX 5.8.9, newer", "nothing was changed")
    enterprise = plugin("restore", "ce", "-n", namespace, "-f", str(archive("ee", "5.7.2")), "--yes")
    assert_one_line_error(enterprise, "comes from EMQX Enterprise")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not an archive")
    assert_one_line_error(plugin("restore", "ce", "-n", namespace, "-f", str(garbage), "--yes"),
                          "not a gzip tar archive")


def test_backup_needs_the_secret_and_says_so_then_works_with_the_documented_rules(
    plugin: PluginRunner, api_client: Any, kubeconfig: str, namespace: str, operator: Any, tmp_path: Path
) -> None:
    from kubernetes import client

    from kubectl_emqx.domain import install
    from tests.install_helpers import service_account_kubeconfig

    create_emqx(api_client, namespace, cr("sec", image="emqx/emqx:5.8.9", cores=1, replicants=0))
    rbac = client.RbacAuthorizationV1Api(api_client)
    client.CoreV1Api(api_client).create_namespaced_service_account(namespace, {"metadata": {"name": "bob"}})
    rbac.create_namespaced_role(namespace, install.user_role(namespace, "ops", dashboard=True))
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "bob-ops"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ops"},
        "subjects": [{"kind": "ServiceAccount", "name": "bob", "namespace": namespace}]})
    bob = ["--kubeconfig", service_account_kubeconfig(api_client, kubeconfig, namespace, "bob", tmp_path)]
    wait_ready(api_client, namespace, "sec")
    wait_for(lambda: plugin("status", "sec", *bob).code == 0, 30, "bob's Role to take effect")
    refused = plugin("backup", "sec", *bob, "-f", str(tmp_path / "sec.tar.gz"))
    assert_one_line_error(refused, f"you may not get secrets/sec-bootstrap-api-key in namespace {namespace}",
                          "backup and restore read the operator's API key", "kubectl emqx install --help")
    rbac.patch_namespaced_role("ops", namespace, install.user_role(namespace, "ops", backup=True))
    wait_for(lambda: plugin.run("auth", "can-i", "get", "secrets", *bob).stdout.strip() == "yes", 30,
             "bob's new Role to apply")
    made = plugin("backup", "sec", *bob, "-f", str(tmp_path / "sec.tar.gz"))
    assert made.code == 0, made.describe()

"""Mutating verbs through the in-memory facade: what they write, what they refuse, what they ask."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from kubectl_emqx.cli.create import DEFAULT_IMAGE
from kubectl_emqx.domain import builders
from kubectl_emqx.kube import errors
from tests.unit.cli_helpers import emqx, fake_with, run

# --- create -----------------------------------------------------------------------------------


def test_create_default_topology_runs_on_the_default_image() -> None:
    fake = fake_with()
    result = run(fake, "create", "demo")
    assert result.exit_code == 0, result.output
    assert result.stderr == "default/demo created\n"
    assert fake.writes == [("create", "demo", builders.build_emqx_resource("demo", "default", image=DEFAULT_IMAGE))]
    spec = fake.stored("demo")["spec"]
    assert (spec["image"], spec["coreTemplate"]["spec"]["replicas"], spec["replicantTemplate"]["spec"]["replicas"]) == (
        "emqx/emqx:5.7.2", 3, 3,
    )


def test_create_help_names_the_default_image() -> None:
    assert "emqx/emqx:5.7.2" in run(fake_with(), "create", "--help").stdout


def test_create_client_dry_run_prints_the_builders_resource_and_writes_nothing() -> None:
    fake = fake_with()
    result = run(
        fake, "create", "demo", "--image", "emqx/emqx-enterprise:5.8.9", "--cores", "2", "--replicants", "4",
        "--storage-class", "fast", "--storage-size", "10Gi", "--service-type", "LoadBalancer",
        "--set", "mqtt.max_packet_size=2MB", "--set", "log.console.level=debug", "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert fake.writes == [] and fake.flags is None  # no cluster needed
    assert yaml.safe_load(result.stdout) == builders.build_emqx_resource(
        "demo", None, image="emqx/emqx-enterprise:5.8.9", cores=2, replicants=4, storage_class="fast",
        storage_size="10Gi", service_type="LoadBalancer",
        config_text="mqtt.max_packet_size = 2MB\nlog.console.level = debug\n",
    )


def test_create_server_dry_run_goes_to_the_api_but_stores_nothing() -> None:
    fake = fake_with()
    result = run(fake, "create", "demo", "--dry-run=server", "-o", "json", "-n", "prod")
    assert result.exit_code == 0, result.output
    assert '"namespace": "prod"' in result.stdout
    assert "prod/demo created (server dry run)" in result.stderr
    assert fake.objects == {}


def test_create_with_config_file(tmp_path: Path) -> None:
    config = tmp_path / "emqx.conf"
    config.write_text("# ours\nlisteners.tcp.default.max_connections = 5000\n")
    fake = fake_with()
    assert run(fake, "create", "demo", "--config-file", str(config)).exit_code == 0
    assert fake.stored("demo")["spec"]["config"]["data"] == config.read_text()


def test_create_refuses_invalid_hocon_with_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "emqx.conf"
    config.write_text("a = 1\nb {\n  c = 2\n")
    fake = fake_with()
    result = run(fake, "create", "demo", "--config-file", str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {config}: invalid HOCON at line 4, column 1:")
    assert fake.writes == []


def test_create_refuses_a_topology_the_image_cannot_run() -> None:
    fake = fake_with()
    result = run(fake, "create", "demo", "--image", "emqx/emqx:5.8.9", "--replicants", "2")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the change is invalid; nothing was written:\n  - spec.replicantTemplate")
    assert "refuses to run replicant nodes" in result.stderr
    assert fake.writes == []


def test_create_without_replicants_flag_follows_the_edition() -> None:
    fake = fake_with()
    assert run(fake, "create", "demo", "--image", "emqx/emqx:5.8.9").exit_code == 0
    assert fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 0


def test_create_existing_name() -> None:
    result = run(fake_with(emqx()), "create", "demo")
    assert result.exit_code == 1
    assert 'error: EMQX cluster "demo" already exists in namespace default' in result.stderr


# --- scale ------------------------------------------------------------------------------------


def test_scale_replicants_patches_the_template_without_asking() -> None:
    fake = fake_with(emqx())
    result = run(fake, "scale", "replicants", "demo", "5")
    assert result.exit_code == 0, result.output
    assert result.stderr == "default/demo: replicants 3 -> 5\n"
    patch = {"spec": {"replicantTemplate": {"spec": {"replicas": 5}}}, "metadata": {"resourceVersion": "101"}}
    assert fake.writes == [("patch", "demo", patch)]


def test_scale_up_cores_does_not_ask() -> None:
    fake = fake_with(emqx())
    assert run(fake, "scale", "cores", "demo", "5").exit_code == 0
    assert fake.stored("demo")["spec"]["coreTemplate"]["spec"]["replicas"] == 5


def test_scale_down_cores_warns_and_asks() -> None:
    body = emqx()
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {"resources": {"requests": {"storage": "1Gi"}}}
    fake = fake_with(body)
    result = run(fake, "scale", "cores", "demo", "1", input="n\n")
    assert result.exit_code == 1
    assert "warning: scaling cores 3 -> 1 removes demo-core-2, demo-core-1" in result.stderr
    assert "Their data volumes (data-demo-core-2, data-demo-core-1) are deleted (PVC retention policy" in result.stderr
    assert "Remove 2 core node(s) from default/demo? [y/N]: n" in result.stderr
    assert "error: not confirmed; nothing was changed (pass --yes to skip the question)" in result.stderr
    assert fake.writes == []

    result = run(fake, "scale", "cores", "demo", "1", input="y\n")
    assert result.exit_code == 0
    assert fake.stored("demo")["spec"]["coreTemplate"]["spec"]["replicas"] == 1


def test_scale_down_cores_with_yes_does_not_ask() -> None:
    fake = fake_with(emqx())
    result = run(fake, "scale", "cores", "demo", "2", "--yes")
    assert result.exit_code == 0
    assert "[y/N]" not in result.stderr
    assert "emptyDir" in result.stderr  # still says what happens to the data


def test_scale_without_input_is_not_confirmed() -> None:
    fake = fake_with(emqx())
    result = run(fake, "scale", "cores", "demo", "2")  # stdin at EOF, as in a script
    assert result.exit_code == 1
    assert fake.writes == []


def test_scale_to_the_same_count_writes_nothing() -> None:
    fake = fake_with(emqx())
    result = run(fake, "scale", "replicants", "demo", "3")
    assert result.exit_code == 0
    assert "already has 3 replicants; nothing to change" in result.stderr
    assert fake.writes == []


def test_scale_refuses_replicants_the_image_cannot_run() -> None:
    fake = fake_with(emqx(image="emqx/emqx:5.8.9", replicants=0))
    result = run(fake, "scale", "replicants", "demo", "2")
    assert result.exit_code == 1
    assert "refuses to run replicant nodes" in result.stderr
    assert fake.writes == []


def test_scale_retries_conflicts_when_the_count_did_not_change() -> None:
    fake = fake_with(emqx())
    fake.conflicts_before_patch = 2  # e.g. the operator writing status meanwhile
    result = run(fake, "scale", "replicants", "demo", "4")
    assert result.exit_code == 0, result.output
    assert fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 4


def test_scale_gives_up_after_persistent_conflicts() -> None:
    fake = fake_with(emqx())
    fake.conflicts_before_patch = 10
    result = run(fake, "scale", "replicants", "demo", "4")
    assert result.exit_code == 1
    assert "kept changing while it was being written (5 attempts); try again" in result.stderr


def test_scale_refuses_when_someone_else_changed_the_count_meanwhile() -> None:
    fake = fake_with(emqx())

    def race(name: str, namespace: str, patch: dict, *, dry_run: bool = False) -> dict:  # type: ignore[type-arg]
        fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] = 7
        fake.stored("demo")["metadata"]["resourceVersion"] = "999"
        fake.patch_emqx = original  # type: ignore[method-assign]
        raise errors.Conflict("conflict")

    original = fake.patch_emqx
    fake.patch_emqx = race  # type: ignore[method-assign]
    result = run(fake, "scale", "replicants", "demo", "4")
    assert result.exit_code == 1
    assert "the replicants count of default/demo was changed by someone else meanwhile" in result.stderr
    assert fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 7


# --- config -----------------------------------------------------------------------------------


def test_config_set_shows_live_and_restart_keys_then_writes() -> None:
    fake = fake_with(emqx(config="# keep me\nmqtt.max_packet_size = 1MB\n"))
    result = run(
        fake, "config", "set", "demo", "mqtt.max_packet_size=2MB", "node.process_limit=100000", "--yes",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "Changes to spec.config.data of default/demo:\n"
        "  ~ mqtt.max_packet_size: 1MB -> 2MB  [live]\n"
        "  + node.process_limit = 100000       [rolling restart]\n"
        "1 setting(s) apply live: the operator loads them into the running nodes.\n"
        "1 setting(s) need a rolling restart (node.process_limit): the operator restarts the nodes one at a time.\n"
        "default/demo: configuration written\n"
    )
    assert fake.stored("demo")["spec"]["config"]["data"] == (
        "# keep me\nmqtt.max_packet_size = 2MB\nnode.process_limit = 100000\n"
    )


def test_config_set_types_values() -> None:
    fake = fake_with(emqx())
    run(fake, "config", "set", "demo", "a.n=5", "a.b=true", "a.s=hello world", 'a.l=[1, "x"]', "--yes")
    text = fake.stored("demo")["spec"]["config"]["data"]
    assert text == 'a.n = 5\na.b = true\na.s = "hello world"\na.l = [1, x]\n'


def test_config_set_asks_and_declining_writes_nothing() -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    result = run(fake, "config", "set", "demo", "a=2", input="n\n")
    assert result.exit_code == 1
    assert "Write this configuration to default/demo? [y/N]: n" in result.stderr
    assert fake.writes == []


def test_config_set_writes_bootstrap_config_on_v2alpha1_resources() -> None:
    body = emqx()
    body["spec"]["bootstrapConfig"] = "a = 1\n"
    fake = fake_with(body)
    result = run(fake, "config", "set", "demo", "a=2", "--yes")
    assert result.exit_code == 0, result.output
    assert "Changes to spec.bootstrapConfig of default/demo:" in result.stderr
    assert fake.writes[0][2]["spec"] == {"bootstrapConfig": "a = 2\n"}


def test_config_set_refuses_settings_the_operator_cannot_run() -> None:
    fake = fake_with(emqx())
    result = run(fake, "config", "set", "demo", "dashboard.listeners.http.enable=false", "--yes")
    assert result.exit_code == 1
    assert "the dashboard HTTP listener is disabled" in result.stderr
    assert fake.writes == []


def test_config_set_unchanged_writes_nothing() -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    result = run(fake, "config", "set", "demo", "a=1", "--yes")
    assert result.exit_code == 0
    assert "the configuration is unchanged; nothing to write" in result.stderr
    assert fake.writes == []


def test_config_apply_merge_and_replace(tmp_path: Path) -> None:
    overrides = tmp_path / "o.conf"
    overrides.write_text("mqtt { max_packet_size = 4MB }\n")
    fake = fake_with(emqx(config="mqtt.max_packet_size = 1MB\nlog.console.level = debug\n"))
    assert run(fake, "config", "apply", "demo", "-f", str(overrides), "--yes").exit_code == 0
    assert fake.stored("demo")["spec"]["config"]["data"] == (
        "mqtt {\n  max_packet_size = 4MB\n}\nlog {\n  console {\n    level = debug\n  }\n}\n"
    )
    result = run(fake, "config", "apply", "demo", "-f", str(overrides), "--mode", "replace", "--yes")
    assert result.exit_code == 0
    assert "- log.console.level (was debug)  [live]" in result.stderr
    assert fake.stored("demo")["spec"]["config"]["data"] == overrides.read_text()


def test_config_apply_from_stdin_reports_invalid_hocon_and_writes_nothing() -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    result = run(fake, "config", "apply", "demo", "-f", "-", "--yes", input="a = 1\nb = [1, 2\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: <stdin>: invalid HOCON at line 3, column 1:")
    assert result.stderr.rstrip().endswith("nothing was written")
    assert fake.writes == []


def _editor(tmp_path: Path, *versions: str) -> dict[str, str]:
    """An $EDITOR that writes the given texts on successive runs (and keeps what it was shown)."""
    for index, text in enumerate(versions):
        (tmp_path / f"version-{index}").write_text(text)
    script = tmp_path / "editor.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(ls "{tmp_path}"/shown-* 2>/dev/null | wc -l)\n'
        f'cp "$1" "{tmp_path}/shown-$n"\n'
        f'cp "{tmp_path}/version-$n" "$1"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"EDITOR": str(script), "VISUAL": str(script)}


def test_config_edit_reopens_on_parse_errors_then_writes(tmp_path: Path) -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    env = _editor(tmp_path, "a = 2\nb {\n", "a = 2\nb { c = 3 }\n")
    result = run(fake, "config", "edit", "demo", "--yes", env=env)
    assert result.exit_code == 0, result.output
    assert "warning: invalid HOCON at line 3, column 1" in result.stderr
    second_view = (tmp_path / "shown-1").read_text()
    assert second_view.startswith("a = 2\nb {\n# kubectl-emqx: invalid HOCON at line 3, column 1")
    assert fake.stored("demo")["spec"]["config"]["data"] == "a = 2\nb { c = 3 }\n"


def test_config_edit_without_changes_writes_nothing(tmp_path: Path) -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    result = run(fake, "config", "edit", "demo", env=_editor(tmp_path, "a = 1\n"))
    assert result.exit_code == 0
    assert "unchanged; nothing to write" in result.stderr
    assert fake.writes == []


def test_config_edit_giving_up_on_an_error_writes_nothing(tmp_path: Path) -> None:
    fake = fake_with(emqx(config="a = 1\n"))
    broken = "a = {\n"
    shown_again = broken + (
        "# kubectl-emqx: invalid HOCON at line 2, column 1: Expected '}'\n"
        "# kubectl-emqx: fix it and save (these lines are dropped); quit without saving to give up\n"
    )
    result = run(fake, "config", "edit", "demo", "--yes", env=_editor(tmp_path, broken, shown_again))
    assert result.exit_code == 1, result.output
    assert "error: the configuration still does not parse; nothing was written" in result.stderr
    assert fake.writes == []


def test_config_change_guards_against_concurrent_edits() -> None:
    fake = fake_with(emqx(config="a = 1\n"))

    def race(name: str, namespace: str, patch: dict, *, dry_run: bool = False) -> dict:  # type: ignore[type-arg]
        fake.stored("demo")["spec"]["config"]["data"] = "a = 5\n"
        fake.stored("demo")["metadata"]["resourceVersion"] = "999"
        fake.patch_emqx = original  # type: ignore[method-assign]
        raise errors.Conflict("conflict")

    original = fake.patch_emqx
    fake.patch_emqx = race  # type: ignore[method-assign]
    result = run(fake, "config", "set", "demo", "a=2", "--yes")
    assert result.exit_code == 1
    assert "spec.config.data of default/demo was changed by someone else meanwhile; nothing was written" in (
        result.stderr
    )
    assert fake.stored("demo")["spec"]["config"]["data"] == "a = 5\n"


# --- upgrade ----------------------------------------------------------------------------------


def test_upgrade_within_policy() -> None:
    fake = fake_with(emqx())
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", input="y\n")
    assert result.exit_code == 0, result.output
    assert "  set spec.image: emqx/emqx:5.7.2 -> emqx/emqx:5.7.3\n" in result.stderr
    assert "Version policy: ok\nUpgrade default/demo to emqx/emqx:5.7.3? [y/N]: y\n" in result.stderr
    assert fake.writes[0][2]["spec"] == {"image": "emqx/emqx:5.7.3"}


def test_upgrade_policy_violation_warns_and_asks() -> None:
    fake = fake_with(emqx(image="emqx/emqx-enterprise:5.10.4", cores=1, replicants=0))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx-enterprise:6.0.1", input="n\n")
    assert result.exit_code == 1
    assert "warning: version policy (major-change): 5.10.4 -> 6.0.1 changes the major version" in result.stderr
    assert "Upgrade despite the policy warnings? [y/N]: n" in result.stderr
    assert fake.writes == []
    assert run(fake, "upgrade", "demo", "--image", "emqx/emqx-enterprise:6.0.1", "--yes").exit_code == 0
    assert fake.stored("demo")["spec"]["image"] == "emqx/emqx-enterprise:6.0.1"


def test_upgrade_dry_run_prints_the_plan_only() -> None:
    fake = fake_with(emqx())
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--dry-run")
    assert result.exit_code == 0
    assert result.stderr == (
        "Plan for default/demo:\n"
        "  set spec.image: emqx/emqx:5.7.2 -> emqx/emqx:5.7.3\n"
        "  the operator replaces the 3 core node(s) one at a time, then the 3 replicant(s)\n"
        "Version policy: ok\n"
        "Dry run: nothing was changed.\n"
    )
    assert fake.writes == []


def test_multi_step_dry_run_prints_every_hop_and_why() -> None:
    fake = fake_with(emqx(image="emqx/emqx:5.6.1", replicants=0))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "Plan for default/demo:\n"
        "  the nodes run emqx/emqx:5.6.1; emqx/emqx:5.8.9 is 2 hops away, each Ready and verified through EMQX "
        "before the next:\n"
        "  hop 1/2: set spec.image: emqx/emqx:5.6.1 -> emqx/emqx:5.7.2\n"
        "      EMQX upgrades one minor release at a time; 5.7.2 is the newest 5.7 release kubectl-emqx knows\n"
        "  hop 2/2: set spec.image: emqx/emqx:5.7.2 -> emqx/emqx:5.8.9\n"
        "      the target\n"
        "  at each hop the operator replaces the 3 core node(s) one at a time, then the 0 replicant(s)\n"
        "Version policy: ok at every hop\n"
        "Dry run: nothing was changed.\n"
    )
    assert fake.writes == []


def test_multi_step_needs_wait() -> None:
    fake = fake_with(emqx(image="emqx/emqx:5.6.1", replicants=0))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes")
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "error: emqx/emqx:5.8.9 is 2 hops away (emqx/emqx:5.7.2, emqx/emqx:5.8.9) and each must be Ready before the "
        "next: add --wait (or upgrade to emqx/emqx:5.7.2 first); nothing was changed\n")
    assert fake.writes == []


def test_a_path_that_cannot_work_is_refused_naming_the_hop_and_the_rule() -> None:
    fake = fake_with(emqx(image="emqx/emqx:5.6.1", replicants=3))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes", "--wait")
    assert result.exit_code == 1
    assert ("warning: version policy (no-opensource-replicants): hop 2/2 (emqx/emqx:5.7.2 -> emqx/emqx:5.8.9): "
            "EMQX Opensource 5.8.9 refuses the replicant role") in result.stderr
    assert "hop 1/2 (emqx/emqx:5.6.1" not in result.stderr  # the first hop is fine
    assert result.stderr.endswith(
        "error: the path to emqx/emqx:5.8.9 cannot work: hop 2/2 (emqx/emqx:5.7.2 -> emqx/emqx:5.8.9) breaks "
        "no-opensource-replicants; nothing was changed\n")
    assert fake.writes == []


def test_upgrade_patches_emqx_template_image_where_the_resource_keeps_it() -> None:
    body = emqx()
    del body["spec"]["image"]
    body["spec"]["emqxTemplate"] = {"image": "emqx/emqx:5.7.2"}
    fake = fake_with(body)
    assert run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--yes").exit_code == 0
    assert fake.writes[0][2]["spec"] == {"emqxTemplate": {"image": "emqx/emqx:5.7.3"}}


def test_downgrade_needs_allow_downgrade() -> None:
    fake = fake_with(emqx())
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.1", "--yes")
    assert result.exit_code == 1
    assert "refusing a downgrade without --allow-downgrade" in result.stderr
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.1", "--allow-downgrade", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.writes[0][2]["spec"] == {"image": "emqx/emqx:5.7.1", "updateStrategy": {"allowDowngrade": True}}


def test_rollback_uses_the_previous_image() -> None:
    body = emqx(image="emqx/emqx:5.7.3")
    body["status"]["previousImage"] = "emqx/emqx:5.7.2"
    fake = fake_with(body)
    result = run(fake, "upgrade", "demo", "--rollback", "--yes")
    assert result.exit_code == 0, result.output
    assert fake.stored("demo")["spec"]["image"] == "emqx/emqx:5.7.2"


def test_rollback_without_previous_image() -> None:
    result = run(fake_with(emqx()), "upgrade", "demo", "--rollback")
    assert result.exit_code == 1
    assert "has no previous image to roll back to (status.previousImage is empty)" in result.stderr


def test_upgrade_to_the_same_image() -> None:
    fake = fake_with(emqx())
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.2")
    assert result.exit_code == 0
    assert "already asks for emqx/emqx:5.7.2; nothing to change" in result.stderr


# --- delete -----------------------------------------------------------------------------------


def test_delete_says_what_goes_and_asks() -> None:
    body = emqx()
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {"resources": {"requests": {"storage": "1Gi"}}}
    fake = fake_with(body)
    result = run(fake, "delete", "demo", input="n\n")
    assert result.exit_code == 1
    assert "  - StatefulSet demo-core (3 core node(s))\n" in result.stderr
    assert "Core data volumes (data-demo-core-0..data-demo-core-2) are kept (PVC retention policy " in result.stderr
    assert fake.writes == []
    result = run(fake, "delete", "demo", "--yes")
    assert result.exit_code == 0
    assert fake.writes == [("delete", "demo", None)]


def test_delete_unknown_cluster() -> None:
    result = run(fake_with(emqx()), "delete", "dmeo", "--yes")
    assert result.exit_code == 1
    assert 'did you mean "demo"?' in result.stderr


@pytest.fixture(autouse=True)
def _no_real_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)

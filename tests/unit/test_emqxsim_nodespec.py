"""Node identity and boot config from the pod spec (emqx-api.md §3.1, §5, §7.2)."""

from __future__ import annotations

import pytest

from sandbox.emqxsim import versions
from sandbox.emqxsim.nodespec import BootError, build_node_spec, dashboard_port
from sandbox.emqxsim.podspec import resolve_container
from sandbox.emqxsim.testing import emqx_objects, emqx_pod
from sandbox.emqxsim.versions import Edition, ImageError, parse_image


@pytest.mark.parametrize(
    ("image", "edition", "version"),
    [
        ("emqx/emqx:5.8.9", Edition.OPENSOURCE, (5, 8, 9)),
        ("docker.io/emqx/emqx:5.0.6", Edition.OPENSOURCE, (5, 0, 6)),
        ("registry.local:5000/mirror/emqx/emqx-enterprise:5.8.3", Edition.ENTERPRISE, (5, 8, 3)),
        ("public.ecr.aws/emqx/emqx:5.7.2", Edition.OPENSOURCE, (5, 7, 2)),
        ("emqx:5.8.1", Edition.OPENSOURCE, (5, 8, 1)),
        ("emqx/emqx:latest", Edition.OPENSOURCE, (5, 8, 9)),
        ("emqx/emqx", Edition.OPENSOURCE, (5, 8, 9)),
        ("emqx/emqx-enterprise:latest", Edition.ENTERPRISE, (5, 10, 4)),
        ("emqx/emqx:5.7", Edition.OPENSOURCE, (5, 7, 2)),
        ("emqx/emqx:5.8.9-elixir", Edition.OPENSOURCE, (5, 8, 9)),
        ("emqx/emqx-enterprise:5.9.0", Edition.ENTERPRISE, (5, 9, 0)),
    ],
)
def test_image_gives_edition_and_version(image, edition, version):
    parsed = parse_image(image)
    assert (parsed.edition, parsed.version) == (edition, version)


@pytest.mark.parametrize("image", ["emqx/emqx:5.9.0", "emqx/emqx:9.9.9", "emqx/emqx:nightly", "nginx:1.27"])
def test_unknown_images_cannot_be_pulled(image):
    with pytest.raises(ImageError):
        parse_image(image)


def test_reported_edition_and_rel_vsn():
    assert parse_image("emqx/emqx-enterprise:5.9.0").reported_edition is Edition.ENTERPRISE
    assert versions.rel_vsn(Edition.OPENSOURCE, (5, 8, 9)) == "v5.8.9"
    assert versions.rel_vsn(Edition.ENTERPRISE, (5, 8, 9)) == "e5.8.9"
    assert versions.otp_release((5, 8, 9)) == "26.2.5-3/14.2.5"
    assert versions.otp_release((5, 0, 6)).startswith("24.")


def _spec(pod, source=None):
    return build_node_spec(resolve_container(pod, source or emqx_objects()))


def test_core_identity_from_operator_env():
    spec = _spec(emqx_pod("emqx-core-0", "127.252.1.1", namespace="prod"), emqx_objects(namespace="prod"))
    assert spec.node_name == "emqx@emqx-core-0.emqx-headless.prod.svc.cluster.local"
    assert spec.role == "core"
    assert spec.cookie == "s3cret-cookie"
    assert spec.discovery.strategy == "dns"
    assert spec.discovery.scope == ("emqx-headless.prod.svc.cluster.local",)
    assert dashboard_port(spec.image, spec.local_config) == 18083
    assert spec.bootstrap_file == "/opt/emqx/data/bootstrap_api_key"  # quotes inside the env value stripped
    assert spec.data_storage_key is not None and spec.data_storage_key.startswith("emptydir:")


def test_replicant_identity_uses_pod_ip():
    spec = _spec(emqx_pod("emqx-replicant-abc", "127.252.1.2", role="replicant", image="emqx/emqx:5.7.2"))
    assert spec.node_name == "emqx@127.252.1.2"
    assert spec.role == "replicant"


def test_node_name_without_emqx_host_follows_the_docker_entrypoint():
    pod = emqx_pod("emqx-core-1", "127.252.1.3")
    env = pod["spec"]["containers"][0]["env"]
    env[:] = [item for item in env if item["name"] != "EMQX_HOST"]
    # dns+srv and the pod's FQDN in /etc/hosts (hostname + subdomain) -> $(hostname).$DNS_NAME
    assert _spec(pod).node_name == "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"
    del pod["spec"]["subdomain"]
    assert _spec(pod).node_name == "emqx@127.252.1.3"


def test_role_env_var_depends_on_version():
    db_role = emqx_pod("r", "127.252.1.4", role="replicant", image="emqx/emqx:5.0.6", role_env="EMQX_NODE__DB_ROLE")
    assert _spec(db_role).role == "replicant"
    # 5.0.6 has no node.role field: the env var is ignored and the node boots as a core.
    new_name = emqx_pod("r", "127.252.1.4", role="replicant", image="emqx/emqx:5.0.6", role_env="EMQX_NODE__ROLE")
    spec = _spec(new_name)
    assert spec.role == "core"
    assert any("EMQX_NODE__ROLE" in warning for warning in spec.warnings)
    # From 5.0.23 (e5.0.3) node.role is read and db_role stays an alias.
    for image in ("emqx/emqx:5.0.23", "emqx/emqx-enterprise:5.0.3"):
        for role_env in ("EMQX_NODE__ROLE", "EMQX_NODE__DB_ROLE"):
            pod = emqx_pod("r", "127.252.1.4", role="replicant", image=image, role_env=role_env)
            assert _spec(pod).role == "replicant"
    old_enterprise = emqx_pod("r", role="replicant", image="emqx/emqx-enterprise:5.0.2", role_env="EMQX_NODE__ROLE")
    assert _spec(old_enterprise).role == "core"
    missing = emqx_pod("r", "127.252.1.4", role="replicant", image="emqx/emqx:5.7.2", role_env=None)
    assert _spec(missing).role == "core"


def test_opensource_58_refuses_replicant_but_enterprise_and_57_do_not():
    # 5.8.0: the enum of node.role is [core] only; 5.8.1 adds a validator with an explicit message
    with pytest.raises(BootError, match="node.role: not_a_enum_symbol") as refused:
        _spec(emqx_pod("r", role="replicant", image="emqx/emqx:5.8.0"))
    assert refused.value.exit_code == 127  # `hocon multi_get` (node.*) crashes on the schema error
    assert "reason => not_a_enum_symbol" in "\n".join(refused.value.log_lines)
    with pytest.raises(BootError, match="Node role 'replicant' is only allowed in Enterprise edition since 5.8.0"):
        _spec(emqx_pod("r", role="replicant", image="emqx/emqx:5.8.1"))
    assert _spec(emqx_pod("r", role="replicant", image="emqx/emqx-enterprise:5.8.9")).role == "replicant"
    assert _spec(emqx_pod("r", role="replicant", image="emqx/emqx:5.7.2")).role == "replicant"


def test_missing_cookie_env_falls_back_to_default_cookie():
    spec = _spec(emqx_pod("emqx-core-0", cookie=False))
    assert spec.cookie == "emqxsecretcookie"
    assert any("Default cookie" in warning for warning in spec.warnings)


def test_dns_a_record_needs_an_ip_host_from_5_6():
    # emqx_conf_schema.erl validations(): check_node_name_and_discovery_strategy, from v5.6.0 / e5.6.0;
    # hocon_tconf:assert_integrity/3 reports it after the field checks, in `generate` (exit 1)
    a_record = [{"name": "EMQX_CLUSTER__DNS__RECORD_TYPE", "value": "a"}]
    with pytest.raises(BootError, match="check_node_name_and_discovery_strategy") as refused:
        _spec(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.6.0", extra_env=a_record))
    assert refused.value.exit_code == 1
    assert refused.value.log_lines[-2].endswith(
        "[error] #{kind => validation_error,reason => integrity_validation_failure,"
        'result => #{domain => "emqx-core-0.emqx-headless.ns.svc.cluster.local",'
        "explain => \"Node name must be of name@IP format for DNS cluster discovery strategy with 'a' record "
        'type."},validation_name => check_node_name_and_discovery_strategy}'
    )
    # before, nothing checks it: the node boots, but ekka_cluster_dns only ever finds name@IP nodes
    spec = _spec(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.5.1", extra_env=a_record))
    assert spec.discovery.scope == (spec.node_name,)
    assert _spec(emqx_pod("emqx-core-0", image="emqx/emqx:5.8.9")).discovery.strategy == "dns"  # srv


def test_boot_config_is_emqx_conf_overlaid_by_env():
    conf = 'log.console.level = info\ndashboard.listeners.http.bind = 18084\nnode.cookie = "from-file"\n'
    pod = emqx_pod(
        "emqx-core-0",
        extra_env=[
            {"name": "EMQX_LOG__CONSOLE__LEVEL", "value": "debug"},
            {"name": "EMQX_MQTT__MAX_PACKET_SIZE", "value": "2MB"},
            {"name": "EMQX_NOT_A_ROOT__X", "value": "1"},
            {"name": "EMQX_NODE__NOT_A_FIELD", "value": "1"},
        ],
    )
    spec = _spec(pod, emqx_objects(emqx_conf=conf))
    assert spec.local_config["log"]["console"]["level"] == "debug"
    assert spec.local_config["mqtt"]["max_packet_size"] == "2MB"
    assert dashboard_port(spec.image, spec.local_config) == 18084
    assert spec.cookie == "s3cret-cookie"  # env beats emqx.conf
    # hocon ignores unknown roots silently and warns about unknown fields of known roots
    assert spec.warnings[0] == 'unknown_env_vars: ["EMQX_NODE__NOT_A_FIELD"]'
    assert "EMQX_LOG__CONSOLE__LEVEL [log.console.level]: debug" in spec.boot_lines
    assert "EMQX_NODE__COOKIE [node.cookie]: ******" in spec.boot_lines
    env_port = emqx_pod(
        "emqx-core-0", extra_env=[{"name": "EMQX_DASHBOARD__LISTENERS__HTTP__BIND", "value": "0.0.0.0:18085"}]
    )
    env_spec = _spec(env_port, emqx_objects(emqx_conf=conf))
    assert dashboard_port(env_spec.image, env_spec.local_config) == 18085


def test_broken_emqx_conf_refuses_to_boot():
    with pytest.raises(BootError, match="parse_error") as refused:
        _spec(emqx_pod("emqx-core-0"), emqx_objects(emqx_conf="node {{ name = "))
    assert refused.value.exit_code == 1
    first, last = refused.value.log_lines
    assert first.endswith(
        '[error] {parse_error,#{file => "/opt/emqx/etc/emqx.conf",line => 1,reason => "syntax error before: \'{\'"}}'
    )
    assert last.startswith("ERROR: call_hocon_failed: -s emqx_conf_schema -c /opt/emqx/etc/emqx.conf multi_get")


def test_emqx_conf_subpath_missing_from_configmap_is_a_directory():
    source = emqx_objects()
    source.config_maps[("ns", "emqx-configs")] = {"other": "x"}
    with pytest.raises(BootError, match="emqx.conf is not found in /opt/emqx/etc"):
        _spec(emqx_pod("emqx-core-0"), source)


def test_license_key_only_where_the_license_root_exists():
    extra = [{"name": "EMQX_LICENSE__KEY", "value": "abc"}]
    assert _spec(emqx_pod("c", image="emqx/emqx-enterprise:5.9.0", extra_env=extra)).licensed
    assert not _spec(emqx_pod("c", image="emqx/emqx-enterprise:5.9.0")).licensed
    assert _spec(emqx_pod("c", image="emqx/emqx:5.8.9", extra_env=extra)).license_key is None

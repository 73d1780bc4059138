"""Argument and flag errors: one clear line, exit code 2, nothing written."""

from __future__ import annotations

import pytest

from kubectl_emqx.cli.options import parse_duration
from tests.unit.cli_helpers import emqx, fake_with, run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scale", "cores", "demo", "0"], "a cluster needs at least 1 core"),
        (["scale", "nodes", "demo", "3"], "'nodes' is not one of 'cores', 'replicants'"),
        (["scale", "replicants", "demo", "many"], "'many' is not a valid integer"),
        (["create", "Bad_Name"], "lower-case letters, digits and '-'"),
        (["create", "x" * 48], "the name has 48 characters, at most 47 work"),
        (["create", "a.b"], "the name must be a DNS label"),
        (["create", "demo2", "--cores", "0"], "0 is not in the range x>=1"),
        (["create", "demo2", "--storage-size", "lots"], "'lots' is not a size"),
        (["create", "demo2", "--service-type", "Ingress"], "'Ingress' is not one of"),
        (["create", "demo2", "--set", "novalue"], "'novalue' is not KEY=VALUE"),
        (["create", "demo2", "--set", "a=[1,"], "'a=[1,'"),
        (["create", "demo2", "--dry-run=maybe"], "'maybe' is not one of 'none', 'client', 'server'"),
        (["upgrade", "demo"], "give either --image IMAGE or --rollback"),
        (["upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--rollback"], "give either --image IMAGE or --rollback"),
        (["config", "set", "demo", "noequals"], "'noequals' is not KEY=VALUE"),
        (["config", "set", "demo"], "Missing argument 'KEY=VALUE...'"),
        (["config", "apply", "demo"], "Missing option '-f'"),
        (["status", "demo", "-o", "xml"], "'xml' is not one of 'json', 'yaml'"),
        (["list", "--color", "sometimes"], "'sometimes' is not one of 'auto', 'always', 'never'"),
        (["list", "--request-timeout", "soon"], "'soon' is not a duration"),
        (["scale", "replicants", "demo", "2", "--timeout", "1 hour"], "is not a duration"),
        (["stauts", "demo"], "unknown command 'stauts'. Did you mean status"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(args: list[str], message: str) -> None:
    fake = fake_with(emqx())
    result = run(fake, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert fake.writes == []


def test_create_refuses_config_file_with_set(tmp_path: object) -> None:
    fake = fake_with()
    result = run(fake, "create", "demo", "--config-file", "-", "--set", "a=1", input="a = 2\n")
    assert result.exit_code == 2
    assert "use either --config-file or --set, not both" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("0", 0.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5 m", "5x", "m5", "-5s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_global_flags_are_accepted_after_the_verb_and_reach_the_session() -> None:
    fake = fake_with(emqx(namespace="prod"))
    result = run(
        fake, "status", "demo", "-n", "prod", "--context", "ctx", "--as", "bob", "--as-group", "a", "--as-group", "b",
        "--request-timeout", "5s", "--kubeconfig", "/tmp/kc", "--cluster", "c", "--user", "u",
    )
    assert result.exit_code == 0, result.output
    assert fake.flags is not None
    assert (fake.flags.namespace, fake.flags.context, fake.flags.as_user, fake.flags.as_groups) == (
        "prod", "ctx", "bob", ("a", "b"),
    )
    assert (fake.flags.request_timeout, fake.flags.kubeconfig, fake.flags.cluster, fake.flags.user) == (
        5.0, "/tmp/kc", "c", "u",
    )


def test_global_flags_before_the_verb_work_and_later_ones_win() -> None:
    fake = fake_with(emqx(namespace="prod"))
    result = run(fake, "-n", "dev", "--context", "ctx", "status", "demo", "-n", "prod")
    assert result.exit_code == 0, result.output
    assert fake.flags is not None
    assert (fake.flags.namespace, fake.flags.context) == ("prod", "ctx")

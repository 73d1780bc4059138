"""kubectl_complete-emqx output: verbs, sub-verbs, cluster names, file arguments."""

from __future__ import annotations

import subprocess
import sys

from kubectl_emqx import errors
from kubectl_emqx.cli.completion import completion_lines
from kubectl_emqx.cli.main import VERBS
from tests.unit.cli_helpers import emqx, fake_with


def test_verbs_with_help_then_no_file_directive() -> None:
    lines = completion_lines([""])
    assert lines[-1] == ":4"
    assert lines[:-1] == [f"{name}\t{verb.short_help}" for name, verb in VERBS.items()]


def test_verb_prefix() -> None:
    assert completion_lines(["sc"]) == ["scale\tChange the number of core or replicant nodes", ":4"]


def test_sub_verbs() -> None:
    assert [line.split("\t")[0] for line in completion_lines(["config", ""])] == ["apply", "edit", "get", "set", ":4"]
    assert completion_lines(["scale", ""]) == ["cores", "replicants", ":4"]


def test_cluster_names_in_the_chosen_namespace() -> None:
    fake = fake_with(emqx("alpha"), emqx("beta"), emqx("gamma", namespace="prod"))
    assert completion_lines(["status", ""], fake.connect) == ["alpha", "beta", ":4"]
    assert completion_lines(["status", "b"], fake.connect) == ["beta", ":4"]
    assert completion_lines(["-n", "prod", "status", ""], fake.connect) == ["gamma", ":4"]
    assert completion_lines(["scale", "cores", "", ], fake.connect) == ["alpha", "beta", ":4"]
    assert completion_lines(["config", "set", "--namespace", "prod", ""], fake.connect) == ["gamma", ":4"]


def test_completion_uses_a_short_request_timeout() -> None:
    fake = fake_with(emqx("alpha"))
    completion_lines(["status", ""], fake.connect)
    assert fake.flags is not None and fake.flags.request_timeout == 5.0


def test_api_failures_complete_nothing() -> None:
    fake = fake_with(emqx("alpha"))
    fake.failures["list_emqx"] = errors.ClusterUnreachable("down")
    assert completion_lines(["status", ""], fake.connect) == [":4"]


def test_file_arguments_fall_back_to_the_shells_file_completion() -> None:
    assert completion_lines(["create", "x", "--config-file", ""]) == [":0"]
    assert completion_lines(["config", "apply", "x", "-f", ""]) == [":0"]


def test_options() -> None:
    lines = completion_lines(["upgrade", "demo", "--r"])
    assert [line.split("\t")[0] for line in lines] == ["--rollback", "--request-timeout", ":4"]


def test_executable_prints_one_candidate_per_line() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "from kubectl_emqx.cli.completion import main; main()", "upg"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert completed.stdout == "upgrade\tChange a cluster's EMQX image (or roll back)\n:4\n"

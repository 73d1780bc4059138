"""`kubectl emqx --help` and `<verb> --help` must not import the heavy libraries (issue 5)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kubectl_emqx.cli.main import VERBS

HEAVY = ("kubernetes", "kopf", "httpx", "pyhocon", "tabulate", "yaml")

PROBE = """
import json, sys
from kubectl_emqx.cli.main import main
heavy = set(json.loads(sys.argv[2]))
sys.argv = ["kubectl-emqx", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _run(args: list[str]) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return dict(json.loads(completed.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        *([verb, "--help"] for verb in VERBS),
        *(["config", sub, "--help"] for sub in ("get", "set", "edit", "apply")),
    ],
    ids=lambda args: " ".join(args),
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    result = _run(args)
    assert result == {"code": 0, "loaded": []}


def test_argument_errors_import_nothing_heavy() -> None:
    result = _run(["scale", "cores", "demo", "0"])
    assert result == {"code": 2, "loaded": []}


def test_root_help_lists_every_verb_with_static_help() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "from kubectl_emqx.cli.main import main; main()", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    for name, verb in VERBS.items():
        assert f"{name}" in completed.stdout
        assert verb.short_help in completed.stdout
    assert "Usage: kubectl emqx" in completed.stdout

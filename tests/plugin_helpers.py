"""Run the plugin as users do: the real `kubectl` binary finding `kubectl-emqx` (and
`kubectl_complete-emqx`) on PATH, against the sandbox.

PluginRunner(bin_dir / "kubectl", kubeconfig)("status", "demo", "-n", ns) -> Outcome (exit code,
stdout, stderr) of `kubectl emqx status demo -n ns`; .complete("emqx", "status", "") runs
`kubectl __complete ...` as a shell's completion does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The venv holding the editable install of this working tree (its console scripts).
VENV_BIN = Path(sys.executable).parent


def as_from_a_terminal() -> None:
    """preexec_fn for a plugin process a test interrupts with SIGINT: Ctrl-C's default action, as a
    terminal's child has it. A runner started in the background by a non-interactive shell (`cmd &`)
    ignores SIGINT, the ignore is inherited across exec, and Python then installs no KeyboardInterrupt
    handler: the plugin would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass(frozen=True)
class Outcome:
    argv: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        return f"`{' '.join(self.argv)}` exited {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


class PluginRunner:
    def __init__(self, kubectl: Path, kubeconfig: str) -> None:
        for script in ("kubectl-emqx", "kubectl_complete-emqx"):
            if not (VENV_BIN / script).exists():
                pytest.fail(f"{VENV_BIN / script} is missing: install the working tree (pip install -e .)")
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig
        self.env = dict(os.environ)
        self.env["PATH"] = os.pathsep.join([str(VENV_BIN), str(kubectl.parent), self.env.get("PATH", "")])
        self.env["KUBECONFIG"] = kubeconfig
        self.env.pop("NO_COLOR", None)

    def run(self, *args: str, stdin: str | None = None, timeout: float = 180,
            env: dict[str, str] | None = None) -> Outcome:
        """`kubectl <args>` with the plugin on PATH (args usually start with "emqx")."""
        argv = [str(self.kubectl), *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                                env={**self.env, **(env or {})})
        return Outcome(["kubectl", *args], result.returncode, result.stdout, result.stderr)

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 180,
                 env: dict[str, str] | None = None) -> Outcome:
        """`kubectl emqx <args>`."""
        return self.run("emqx", *args, stdin=stdin, timeout=timeout, env=env)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 180) -> Outcome:
        outcome = self(*args, stdin=stdin, timeout=timeout)
        assert outcome.code == 0, outcome.describe()
        return outcome

    def complete(self, *words: str) -> list[str]:
        """What kubectl's own completion (`kubectl __complete <words>`) offers, one candidate a line,
        without the trailing `:<directive>` line."""
        outcome = self.run("__complete", *words, timeout=30)
        assert outcome.code == 0, outcome.describe()
        lines = outcome.stdout.splitlines()
        assert lines and lines[-1].startswith(":"), outcome.describe()
        return lines[:-1]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_one_line_error(outcome: Outcome, *fragments: str, code: int | None = None) -> str:
    """A failed command: non-zero exit (or `code`), nothing on stdout, exactly one non-empty line
    on stderr, `error: ...` holding every fragment, and no traceback. Returns the line."""
    assert outcome.code != 0 if code is None else outcome.code == code, outcome.describe()
    assert outcome.stdout == "", outcome.describe()
    assert len(outcome.error_lines) == 1, outcome.describe()
    line = outcome.error_lines[0]
    assert line.startswith("error: "), outcome.describe()
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "Traceback" not in outcome.stderr
    return line

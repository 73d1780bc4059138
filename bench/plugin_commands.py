"""Wall time of the plugin's everyday commands beside `kubectl get` (issue 5), on the sandbox.

Run from the repository root:

    .venv/bin/python bench/plugin_commands.py [--runs 20] [--json FILE] [--venv DIR]

Every command runs through the real kubectl with an installation's bin directory on PATH (default
this repository's .venv, an editable install; --venv names another, e.g. a plain `pip install .`),
against a Ready 3 cores + 3 replicants cluster: the sandbox in EMQX_SANDBOX_DIR when set, else a
private one (with the EMQX simulator) started and torn down here. The operator is the sandbox's own
when `python -m sandbox up --operator` started one, else one run here for the bench's namespace only.

The commands run round-robin (after two warm-up rounds, which also fill kubectl's discovery
cache), so that load from anything else on the machine spreads over all of them evenly. Goals:
`kubectl emqx --help` <= 100 ms; `kubectl emqx status` <= 1.5 x `kubectl get emqx -o json`.
Reference rows: `status` the way it ran before the light read session (through the `kubernetes`
client), and what every row pays before the plugin runs a line of its own: kubectl's start-up
(`kubectl version --client`) and the interpreter's (`python -c pass`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sandbox import cluster, operator_process  # noqa: E402

DEFAULT_VENV = REPO_ROOT / ".venv"
CLUSTER = "bench"
HELP_GOAL_MS = 100.0
STATUS_GOAL_RATIO = 1.5


def environment(state: cluster.SandboxState, venv_bin: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv_bin), state.bin_dir, env.get("PATH", "")])
    env["KUBECONFIG"] = state.kubeconfig
    for name in ("NO_COLOR", "KUBECTL_EMQX_NO_EXTRACT"):
        env.pop(name, None)
    return env


def run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


@contextmanager
def ready_cluster(state: cluster.SandboxState, env: dict[str, str]) -> Iterator[str]:
    """A namespace holding a Ready cluster named CLUSTER; an operator of our own when needed.

    The namespace starts with `solo-`: a test session's operator sharing the sandbox leaves such
    namespaces alone, so that ours is the only one reconciling it."""
    namespace = f"solo-bench-{uuid.uuid4().hex[:8]}"
    kubectl = [str(Path(state.bin_dir) / "kubectl")]
    operator_process.install_crd(state)
    subprocess.run([*kubectl, "create", "namespace", namespace], env=env, check=True, capture_output=True)
    own_operator = None
    try:
        if not any(c.name.startswith("operator") and cluster._pid_alive(c.pid) for c in state.components):
            own_operator, comp, live_port = operator_process.spawn(
                state, name=f"operator-bench-{os.getpid()}", extra_args=["-n", namespace]
            )
            operator_process.wait_live(comp, live_port)
        run([*kubectl, "emqx", "create", CLUSTER, "-n", namespace, "--wait", "--timeout", "3m"], env)
        yield namespace
    finally:
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], env=env, capture_output=True)
        if own_operator is not None:
            own_operator.send_signal(signal.SIGTERM)
            try:
                own_operator.wait(15)
            except subprocess.TimeoutExpired:
                own_operator.kill()


def client_path_kubeconfig(state: cluster.SandboxState, directory: str) -> str:
    """The sandbox's kubeconfig with its client certificate handed out by an exec credential plugin
    (`cat` of a prepared ExecCredential): only the `kubernetes` client runs credential plugins, so
    `status` then runs the way it did before the light session (kubectl_emqx/kube/rest.py), plus
    one `cat`."""
    import base64

    import yaml

    config = yaml.safe_load(Path(state.kubeconfig).read_text())
    for index, entry in enumerate(config["users"]):
        user = entry["user"]
        credential = Path(directory) / f"exec-credential-{index}.json"
        credential.write_text(json.dumps({
            "apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": {"clientCertificateData": base64.b64decode(user.pop("client-certificate-data")).decode(),
                       "clientKeyData": base64.b64decode(user.pop("client-key-data")).decode()},
        }))
        user["exec"] = {"apiVersion": "client.authentication.k8s.io/v1", "command": "cat",
                        "args": [str(credential)], "interactiveMode": "Never"}
    path = Path(directory) / "kubeconfig-client-path"
    path.write_text(json.dumps(config))
    return str(path)


def commands(namespace: str, client_kubeconfig: str, venv_bin: Path) -> dict[str, list[str]]:
    return {
        "kubectl get emqx -o json": ["kubectl", "get", "emqx", "-n", namespace, "-o", "json"],
        "kubectl emqx --help": ["kubectl", "emqx", "--help"],
        "kubectl emqx list": ["kubectl", "emqx", "list", "-n", namespace],
        f"kubectl emqx status {CLUSTER}": ["kubectl", "emqx", "status", CLUSTER, "-n", namespace],
        "status via the kubernetes client": ["kubectl", "emqx", "status", CLUSTER, "-n", namespace,
                                             "--kubeconfig", client_kubeconfig],
        "kubectl version --client": ["kubectl", "version", "--client"],
        "kubectl-emqx --help (no kubectl)": [str(venv_bin / "kubectl-emqx"), "--help"],
        "python -c pass": [str(venv_bin / "python"), "-c", "pass"],
    }


REFERENCES = ("status via the kubernetes client", "kubectl version --client", "kubectl-emqx --help (no kubectl)",
              "python -c pass")


def measure(argvs: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {label: [] for label in argvs}
    for round_ in range(runs + 2):
        for label, argv in argvs.items():
            elapsed = run(argv, env)
            if round_ >= 2:
                samples[label].append(elapsed)
    return samples


def report(samples: dict[str, list[float]], runs: int, venv: Path) -> list[dict[str, object]]:
    baseline = statistics.median(samples["kubectl get emqx -o json"])
    rows: list[dict[str, object]] = []
    for label, values in samples.items():
        ordered = sorted(values)
        median = statistics.median(ordered)
        row: dict[str, object] = {
            "command": label,
            "median_ms": median * 1000,
            "min_ms": ordered[0] * 1000,
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
            "ratio": median / baseline,
            "goal": "",
        }
        if label == "kubectl emqx --help":
            row["goal"] = f"<= {HELP_GOAL_MS:.0f} ms: " + ("met" if median * 1000 <= HELP_GOAL_MS else "MISSED")
        elif label.startswith("kubectl emqx status"):
            row["goal"] = f"<= {STATUS_GOAL_RATIO}x get: " + (
                "met" if median / baseline <= STATUS_GOAL_RATIO else "MISSED")
        rows.append(row)

    print(f"\nplugin commands on the sandbox ({venv}): {runs} runs each, interleaved; ratio = median / median "
          "of `kubectl get emqx -o json`")
    header = f"{'command':<34} {'median':>8} {'min':>8} {'p90':>8} {'ratio':>7}   goal"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["command"] == REFERENCES[0]:
            print("reference:")
        print(f"{row['command']:<34} {row['median_ms']:>6.1f}ms {row['min_ms']:>6.1f}ms {row['p90_ms']:>6.1f}ms "
              f"{row['ratio']:>6.2f}x   {row['goal']}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None, help="also write the samples and the table here")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="the installation to measure (default: this repository's .venv, an editable install)")
    args = parser.parse_args()
    venv_bin = args.venv.resolve() / "bin"
    if not (venv_bin / "kubectl-emqx").exists():
        raise SystemExit(f"bench: {venv_bin / 'kubectl-emqx'} is missing")
    with cluster.reused_or_private("emqx-bench-commands-") as state, tempfile.TemporaryDirectory() as scratch:
        env = environment(state, venv_bin)
        with ready_cluster(state, env) as namespace:
            samples = measure(commands(namespace, client_path_kubeconfig(state, scratch), venv_bin), env, args.runs)
    rows = report(samples, args.runs, args.venv)
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "rows": rows, "samples": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

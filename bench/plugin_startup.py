"""Start-up of the installed plugin (issue 9): first run and later runs of `kubectl emqx --help`,
`kubectl emqx list -A` and `kubectl emqx version`, through the real kubectl, for each way of shipping it.

Run from the repository root:

    .venv/bin/python bench/plugin_startup.py [--runs 10] [--cold-runs 3] [--precompiled] [--python PATH]

It builds the krew archive (dist_tools.build_plugin, into a temporary directory), installs it with
the real krew into a private KREW_ROOT, and points the plugin at a sandbox: the one in
EMQX_SANDBOX_DIR when set, else a private one (no simulator) that it starts and tears down. The CRD
is applied so that `list` makes its real API call (and finds nothing).

Rows:
  krew            the shipped layout: first run = empty first-run cache (extracts site/, Python
                  compiles what it imports into __pycache__); later runs = cache warm.
  krew+pyc        with --precompiled: an archive that also carries bytecode for the build's Python.
  zip in place    KUBECTL_EMQX_NO_EXTRACT=1: imported straight from the zip (zipimport compiles every
                  module on every run; what a plain zipapp of sources costs).
  pip venv        this repository's .venv console script (what `pipx install` gives: a venv whose
                  bytecode pip compiled at install time).
  kubectl alone   `kubectl version --client`: kubectl's own share of every row.

"first" is the median over --cold-runs runs, each with the cache emptied first; "later" is the
median (min-max) of --runs runs. The plugin runs on --python as `python3` (default: the interpreter
behind .venv, without .venv's packages).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from dist_tools import build_plugin  # noqa: E402
from dist_tools.krew import KrewHome  # noqa: E402
from sandbox import build as sandbox_build  # noqa: E402
from sandbox import cluster, operator_process  # noqa: E402

# --help: click only; list: the light read path (kubectl_emqx.kube.rest, no kubernetes client);
# version: a verb that loads the full kubernetes client.
COMMANDS = {
    "--help": ["kubectl", "emqx", "--help"],
    "list": ["kubectl", "emqx", "list", "-A"],
    "version": ["kubectl", "emqx", "version"],
}


FAILURES: dict[str, str] = {}


def timed(home: KrewHome, argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one run; a failing run is still timed, and its first error is reported at the end."""
    start = time.perf_counter()
    completed = home.run(*argv, env=env, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        FAILURES.setdefault(" ".join(argv), completed.stderr.strip().splitlines()[0] if completed.stderr else "")
    return elapsed


@dataclass
class Layout:
    label: str
    home: KrewHome
    env: dict[str, str] = field(default_factory=dict)
    cold: bool = True  # has a first-run cache to empty
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def measure(layouts: list[Layout], runs: int, cold_runs: int, zip_runs: int) -> None:
    """Round-robin over the layouts, so that load from anything else on the machine spreads evenly."""
    for name, argv in COMMANDS.items():
        for layout in layouts:
            layout.samples[name] = {"first": [], "later": []}
        for _ in range(cold_runs):
            for layout in layouts:
                if layout.cold:
                    shutil.rmtree(layout.home.cache, ignore_errors=True)
                    os.sync()  # a real first run does not follow the deletion of a 26 MB tree
                    layout.samples[name]["first"].append(timed(layout.home, argv, layout.env))
        for index in range(runs):
            for layout in layouts:
                if layout.label != "zip in place" or index < zip_runs:
                    layout.samples[name]["later"].append(timed(layout.home, argv, layout.env))
        for layout in layouts:
            if not layout.cold:
                layout.samples[name]["first"] = layout.samples[name]["later"][:1]


def fmt(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:6.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--zip-runs", type=int, default=3, help="runs of the slow zip-in-place row")
    parser.add_argument("--precompiled", action="store_true", help="also measure an archive carrying bytecode")
    parser.add_argument("--python", type=Path, default=None, help="the plugin's python3 (default: .venv's base)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="emqx-bench-plugin-"))
    rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    sizes: dict[str, dict[str, float]] = {}
    try:
        with cluster.reused_or_private("emqx-bench-plugin-", with_simulator=False, with_provisioner=False) as state:
            operator_process.install_crd(state)
            variants = [("krew", False)] + ([("krew+pyc", True)] if args.precompiled else [])
            layouts: list[Layout] = []
            for label, with_bytecode in variants:
                out = scratch / label
                built = build_plugin.build(out, out / "emqx.yaml", with_bytecode=with_bytecode)
                sizes[label] = {"archive_mb": built.archive_bytes / 1e6, "unpacked_mb": built.unpacked_bytes / 1e6,
                                "files": built.files}
                home = KrewHome(out / "krew", sandbox_build.bin_dir(), out / "cache", state.kubeconfig, args.python)
                home.install(out / "emqx.yaml", built.archive)
                layouts.append(Layout(label, home))
            home = layouts[0].home
            layouts.append(Layout("zip in place", home, {"KUBECTL_EMQX_NO_EXTRACT": "1"}, cold=False))
            venv_bin = scratch / "venv-bin"
            venv_bin.mkdir()
            (venv_bin / "kubectl-emqx").symlink_to(REPO_ROOT / ".venv" / "bin" / "kubectl-emqx")
            venv_path = f"{venv_bin}{os.pathsep}{home.env()['PATH']}"
            layouts.append(Layout("pip venv", home, {"PATH": venv_path}, cold=False))
            measure(layouts, args.runs, args.cold_runs, args.zip_runs)
            rows = {layout.label: layout.samples for layout in layouts}
            kubectl_alone = [timed(home, ["kubectl", "version", "--client"], {}) for _ in range(args.runs)]
            python = subprocess.run([str(home.root / "python-shim" / "python3"), "--version"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nplugin start-up through kubectl ({python}; first = empty cache, median of {args.cold_runs}; "
          f"later = median of {args.runs})")
    print(f"{'layout':<14} {'command':<8} {'first':>10} {'later':>10}   later min-max")
    for label, result in rows.items():
        for command, samples in result.items():
            later = samples["later"]
            print(f"{label:<14} {command:<8} {fmt(samples['first']):>10} {fmt(later):>10}   "
                  f"{min(later) * 1000:.0f}-{max(later) * 1000:.0f} ms")
    print(f"{'kubectl alone':<14} {'version':<8} {'':>10} {fmt(kubectl_alone):>10}")
    for label, size in sizes.items():
        print(f"{label}: archive {size['archive_mb']:.1f} MB, first run unpacks {size['unpacked_mb']:.1f} MB "
              f"({size['files']:.0f} files)")
    for command, error in FAILURES.items():
        print(f"FAILED: {command}: {error}")
    if args.json:
        args.json.write_text(json.dumps({"python": python, "rows": rows, "sizes": sizes,
                                         "kubectl_alone": kubectl_alone}, indent=2))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

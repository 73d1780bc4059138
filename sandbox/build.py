"""Build the sandbox's control-plane binaries from Go modules into a cache outside the repo.

Each tool lives in its own wrapper module under sandbox/tools/<group>/ (committed go.mod/go.sum).
The cache directory of a group is keyed on its go.sum, its build flags and the Go version, so a
group is rebuilt only when one of those changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent / "tools"

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KREW_VERSION = "v0.4.3"
# Fixed so that rebuilds are reproducible.
BUILD_DATE = "2026-01-01T00:00:00Z"


def _kube_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitCommit=0000000000000000000000000000000000000000",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={BUILD_DATE}",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class ToolGroup:
    name: str
    version: str
    packages: dict[str, str]  # output binary name -> Go package
    ldflags: str = "-s -w"

    @property
    def module_dir(self) -> Path:
        return TOOLS_DIR / self.name

    def cache_key(self, go_version: str) -> str:
        digest = hashlib.sha256()
        digest.update((self.module_dir / "go.sum").read_bytes())
        digest.update((self.module_dir / "go.mod").read_bytes())
        digest.update(self.version.encode())
        digest.update(self.ldflags.encode())
        digest.update(go_version.encode())
        digest.update(repr(sorted(self.packages.items())).encode())
        return digest.hexdigest()[:16]


GROUPS = [
    ToolGroup(
        "k8s",
        KUBERNETES_VERSION,
        {
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        },
        _kube_ldflags(),
    ),
    ToolGroup("etcd", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"}),
    ToolGroup("kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
    ToolGroup(
        "krew",
        KREW_VERSION,
        {
            "kubectl-krew": "sigs.k8s.io/krew/cmd/krew",
            "validate-krew-manifest": "sigs.k8s.io/krew/cmd/validate-krew-manifest",
        },
        "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=" + KREW_VERSION,
    ),
]


def cache_root() -> Path:
    base = os.environ.get("KUBECTL_EMQX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubectl-emqx"
    )
    return Path(base)


def bin_dir() -> Path:
    """The directory holding one link per built binary (stable across cache keys)."""
    return cache_root() / "bin"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("sandbox build: the `go` command is not on PATH (install Go >= 1.26)")
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def build_group(group: ToolGroup, gover: str, log: bool = True) -> Path:
    out = cache_root() / "builds" / f"{group.name}-{group.version}-{group.cache_key(gover)}"
    stamp = out / ".complete"
    if stamp.exists() and all((out / b).exists() for b in group.packages):
        if group.name == "kwok" and not all((out / name).exists() for name in KWOK_FILES):
            _copy_kwok_stages(group, out)
        return out
    started = time.monotonic()
    if log:
        print(f"sandbox build: building {group.name} {group.version} into {out} ...", file=sys.stderr, flush=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for binary, pkg in group.packages.items():
        cmd = ["go", "build", "-trimpath", "-ldflags", group.ldflags, "-o", str(tmp / binary), pkg]
        result = subprocess.run(cmd, cwd=group.module_dir, env=_go_env(), capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit(f"sandbox build: `{' '.join(cmd)}` failed in {group.module_dir}")
    if group.name == "kwok":
        _copy_kwok_stages(group, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    stamp.write_text(f"{time.monotonic() - started:.1f}\n")
    if log:
        print(
            f"sandbox build: {group.name} done in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True
        )
    return out


# Beside the kwok binary: its default Stages and the CRDs of the debugging resources the sandbox uses
# (PortForward and Logs serve `kubectl port-forward` and `kubectl logs`; applied before kwok starts).
KWOK_FILES = ("kwok-default-stages.yaml", "kwok-crds.yaml")
KWOK_CRDS = ["kwok.x-k8s.io_portforwards.yaml", "kwok.x-k8s.io_logs.yaml"]
KWOK_DEFAULT_STAGES = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
]


def _copy_kwok_stages(group: ToolGroup, out: Path) -> None:
    """The standalone kwok binary has no built-in stages; keep the module's defaults (and the CRDs of
    the debugging resources) beside it."""
    module_dir = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=group.module_dir, env=_go_env(), capture_output=True, text=True, check=True,
    ).stdout.strip()
    stage_root = Path(module_dir) / "kustomize" / "stage"
    documents = [(stage_root / rel).read_text() for rel in KWOK_DEFAULT_STAGES]
    (out / "kwok-default-stages.yaml").write_text("\n---\n".join(documents))
    crd_root = Path(module_dir) / "kustomize" / "crd" / "bases"
    (out / "kwok-crds.yaml").write_text("\n---\n".join((crd_root / name).read_text() for name in KWOK_CRDS))


def build_all(names: list[str] | None = None) -> Path:
    gover = go_version()
    links = bin_dir()
    links.mkdir(parents=True, exist_ok=True)
    for group in GROUPS:
        if names and group.name not in names:
            continue
        out = build_group(group, gover)
        for binary in group.packages:
            link = links / binary
            target = out / binary
            if link.is_symlink() or link.exists():
                if link.resolve() == target.resolve():
                    continue
                link.unlink()
            link.symlink_to(target)
    return links


def require_binaries(names: list[str]) -> Path:
    """Return the bin dir, failing with one line naming the first missing binary."""
    links = bin_dir()
    for name in names:
        if not (links / name).exists():
            raise SystemExit(
                f"sandbox: binary {name!r} is missing from {links}: run `python -m sandbox build` first"
            )
    return links

"""Build the krew plugin archive and its manifest.

    python -m dist_tools.build_plugin [--out dist] [--manifest dist/emqx.yaml] [--precompile]
    python -m dist_tools.build_plugin lock     # re-pin runtime-requirements.txt from this environment

The artifact is one archive for linux and darwin, `dist/kubectl-emqx_v<version>.tar.gz`, holding
`LICENSE` and `kubectl-emqx`: a self-extracting zipapp (`#!/usr/bin/env python3`) with the plugin
and its dependencies as Python sources under `site/` and dist_tools/bootstrap.py as `__main__.py`.
The dependencies are the pinned runtime closure in runtime-requirements.txt (its [plugin] section;
the operator image installs the whole file, adding the [operator] section), installed with pip and
then made pure Python: compiled extension modules are deleted (PyYAML and charset-normalizer fall
back to their Python implementations; the smoke import below proves every module still loads), as
are kubernetes.aio (the asyncio client, the only user of aiohttp, which is not shipped), tests and
console scripts. The build is reproducible: the same pins and sources give the same bytes.

The krew manifest dist/emqx.yaml is written by the same build, with that archive's sha256: it is a
release artifact beside the archive, never committed (a committed sha256 goes stale with the next
source change; README "Install" says why).
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import hashlib
import io
import json
import os
import py_compile
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
LOCK_FILE = HERE / "runtime-requirements.txt"
PLUGIN_SECTION, OPERATOR_SECTION = "plugin", "operator"
BOOTSTRAP = HERE / "bootstrap.py"
TEMPLATE = REPO_ROOT / "krew" / "emqx.yaml.in"
MANIFEST = REPO_ROOT / "dist" / "emqx.yaml"
LICENSE = REPO_ROOT / "LICENSE"
PACKAGE = "kubectl_emqx"

PLUGIN_NAME = "emqx"
EXECUTABLE = "kubectl-emqx"
HOMEPAGE = "https://github.com/kubectl-emqx/kubectl-emqx"
RELEASES = HOMEPAGE + "/releases/download"
SHEBANG = b"#!/usr/bin/env python3\n"

# Requirement edges the archive does not follow: kubernetes (>= 36) requires aiohttp, but only its
# asyncio client kubernetes.aio imports it, and that is pruned. aiohttp's own closure (multidict,
# yarl, frozenlist, propcache: compiled) goes with it.
NOT_SHIPPED = frozenset({"aiohttp"})
PRUNED_PATHS = ("bin", "kubernetes/aio")
PRUNED_DIRS = frozenset({"__pycache__", "tests"})
EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")

# Fixed timestamps make the zip and the tar.gz byte-for-byte reproducible.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z

# Imported by the smoke test besides every kubectl_emqx module: what the plugin reaches at run time.
SMOKE_MODULES = (
    "kubernetes.client", "kubernetes.config", "kubernetes.watch", "kubernetes.stream",
    "kubernetes.client.rest", "yaml", "requests", "charset_normalizer", "websocket",
    "pyhocon", "httpx", "click",
)


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Result:
    version: str        # without the leading v
    archive: Path       # the .tar.gz krew installs
    zipapp: Path        # the executable inside it
    sha256: str
    build_id: str       # names the first-run cache directory
    archive_bytes: int
    unpacked_bytes: int  # the site/ tree the first run extracts
    files: int
    manifest: Path | None


# --- the pinned dependency closure ---------------------------------------------------------------

def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(extra: str | None = None) -> list[str]:
    """The project's dependencies, plus those of an optional extra (`operator`: kopf)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    found = [str(item) for item in project["dependencies"]]
    if extra:
        found += [str(item) for item in project["optional-dependencies"][extra]]
    return found


def resolve_closure(requirements: Iterable[str], not_shipped: frozenset[str] = NOT_SHIPPED) -> dict[str, str]:
    """Canonical name -> installed version for the requirements' closure in this environment,
    leaving out `not_shipped`. Markers are evaluated for this interpreter: run it on the oldest
    supported Python so that backport dependencies are included."""
    from importlib import metadata

    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    queue = [Requirement(text) for text in requirements]
    while queue:
        requirement = queue.pop()
        name = canonical(requirement.name)
        if name in not_shipped or name in pins:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as exc:
            raise BuildError(f"{requirement.name} is required but not installed here") from exc
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise BuildError(f"installed {requirement.name} {dist.version} does not satisfy {requirement}")
        pins[name] = dist.version
        queue.extend(Requirement(text) for text in dist.requires or [])
    return dict(sorted(pins.items()))


def lock_sections() -> dict[str, dict[str, str]]:
    """The plugin archive's closure, and what the operator image adds (kopf, and aiohttp's closure,
    which both kopf and kubernetes.aio need), resolved from one environment so that they agree."""
    plugin = resolve_closure(runtime_requirements())
    image = resolve_closure(runtime_requirements("operator"), not_shipped=frozenset())
    return {PLUGIN_SECTION: plugin, OPERATOR_SECTION: {k: v for k, v in image.items() if k not in plugin}}


def lock_text(sections: dict[str, dict[str, str]]) -> str:
    text = (
        "# kubectl-emqx's runtime closure, pinned: `python -m dist_tools.build_plugin lock` rewrites it\n"
        "# from the current environment (Python 3.11, the oldest supported, as the operator image runs).\n"
        "# The krew plugin archive installs the [plugin] section; the operator image (operator/Dockerfile)\n"
        "# installs the whole file. aiohttp and its closure are [operator] only on purpose: the archive does\n"
        "# not ship kubernetes.aio, their only user besides kopf.\n"
    )
    for section, pins in sections.items():
        text += f"\n# [{section}]\n" + "".join(f"{name}=={version}\n" for name, version in pins.items())
    return text


def read_lock(path: Path = LOCK_FILE, section: str | None = None) -> dict[str, str]:
    """name -> version of one section of the lock (None: all of it)."""
    pins = {}
    current = None
    for raw in path.read_text().splitlines():
        header = re.fullmatch(r"#\s*\[(\w+)\]\s*", raw.strip())
        if header:
            current = header.group(1)
        line = raw.split("#", 1)[0].strip()
        if line and (section is None or current == section):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    return pins


# --- staging: pip install, add the plugin, prune to pure Python ----------------------------------

def stage(site: Path, lock: Path = LOCK_FILE) -> list[str]:
    """Fill `site` with the pinned dependencies (the lock's [plugin] section) and the plugin; return
    what was pruned."""
    pins = read_lock(lock, PLUGIN_SECTION)
    if not pins:
        raise BuildError(f"{lock} has no [{PLUGIN_SECTION}] section")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
           "--no-deps", "--no-compile", "--target", str(site),
           *(f"{name}=={version}" for name, version in pins.items())]
    completed = subprocess.run(pip, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BuildError(f"pip install of {lock.name} failed:\n{completed.stderr or completed.stdout}")
    shutil.copytree(REPO_ROOT / PACKAGE, site / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return prune(site)


def prune(site: Path) -> list[str]:
    removed: list[str] = []
    for relative in PRUNED_PATHS:
        if (site / relative).exists():
            shutil.rmtree(site / relative)
            removed.append(relative + "/")
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site).as_posix()
        if relative.startswith(PACKAGE + "/") or not path.exists():
            continue
        if path.is_dir() and path.name in PRUNED_DIRS:
            shutil.rmtree(path)
            removed.append(relative + "/")
        elif path.is_file() and (path.name.endswith(EXTENSION_SUFFIXES) or path.name.endswith("_test.py")):
            path.unlink()
            removed.append(relative)
    return removed


SMOKE = r"""
import importlib, json, pkgutil, sys
site, names, package = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.path.insert(0, site)
root = importlib.import_module(package)
names += [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
compiled = sorted(m.__name__ for m in list(sys.modules.values())
                  if (getattr(m, "__file__", None) or "").startswith(site) and not m.__file__.endswith(".py"))
print(json.dumps({"failed": failed, "compiled": compiled, "count": len(names)}))
"""


def smoke_import(site: Path) -> int:
    """Import every plugin module and SMOKE_MODULES from `site` on this Python without site-packages
    (-I -S): proves the tree is self-contained and pure. Returns the number of modules imported."""
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", SMOKE, str(site), json.dumps(SMOKE_MODULES), PACKAGE],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if completed.returncode != 0:
        raise BuildError(f"smoke import crashed:\n{completed.stderr}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if report["failed"] or report["compiled"]:
        lines = [f"  {name}: {why}" for name, why in report["failed"].items()]
        lines += [f"  {name}: compiled module left in the archive" for name in report["compiled"]]
        raise BuildError(
            "the staged plugin does not import on its own (a new dependency? run "
            "`python -m dist_tools.build_plugin lock`):\n" + "\n".join(lines)
        )
    return int(report["count"])


def precompile(site: Path) -> None:
    """Optional: add __pycache__ bytecode for this Python (unchecked-hash, so extraction times do
    not matter). Other Python minors ignore it and compile on first import."""
    ok = compileall.compile_dir(
        str(site), quiet=2, workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise BuildError("compileall failed")


# --- the zipapp and the tar.gz -------------------------------------------------------------------

def payload_files(site: Path) -> list[tuple[str, bytes]]:
    return [(path.relative_to(site).as_posix(), path.read_bytes())
            for path in sorted(site.rglob("*")) if path.is_file()]


def build_id(files: list[tuple[str, bytes]], bootstrap: bytes) -> str:
    digest = hashlib.sha256(bootstrap)
    for name, data in files:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def _zip_entry(name: str, mode: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix: the mode above is meaningful
    return info


def build_zipapp(site: Path, target: Path) -> tuple[str, int, int]:
    """Write the executable zipapp; return (build id, unpacked bytes, file count)."""
    files = payload_files(site)
    bootstrap = BOOTSTRAP.read_text()
    ident = build_id(files, bootstrap.encode())
    if '"@BUILD_ID@"' not in bootstrap:
        raise BuildError(f"{BOOTSTRAP} has no BUILD_ID placeholder")
    main = bootstrap.replace('"@BUILD_ID@"', f'"{ident}"', 1)
    with open(target, "wb") as raw:
        raw.write(SHEBANG)
        with zipfile.ZipFile(raw, "w") as bundle:
            bundle.writestr(_zip_entry("__main__.py"), main)
            for name, data in files:
                bundle.writestr(_zip_entry("site/" + name), data)
    target.chmod(0o755)
    return ident, sum(len(data) for _, data in files), len(files)


def build_tarball(members: list[tuple[str, Path, int]], target: Path) -> None:
    with open(target, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path, mode in members:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, TAR_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_name(version: str) -> str:
    return f"{EXECUTABLE}_v{version}.tar.gz"


def render_manifest(version: str, sha256: str, unpacked_bytes: int,
                    homepage: str = HOMEPAGE, releases: str = RELEASES) -> str:
    lines = TEMPLATE.read_text().splitlines(keepends=True)
    body = "".join(lines[next(i for i, line in enumerate(lines) if not line.startswith("#")):])
    text = string.Template(body).substitute(
        version=f"v{version}",
        homepage=homepage,
        uri=f"{releases.rstrip('/')}/v{version}/{archive_name(version)}",
        sha256=sha256,
        unpacked_size=f"about {max(1, round(unpacked_bytes / 1e6))} MB",
    )
    return "# Generated from krew/emqx.yaml.in by `make plugin` (python -m dist_tools.build_plugin).\n" + text


def plugin_version() -> str:
    text = (REPO_ROOT / PACKAGE / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise BuildError(f"no __version__ in {PACKAGE}/__init__.py")
    return match.group(1)


def build(out: Path, manifest: Path | None = MANIFEST, *, with_bytecode: bool = False,
          homepage: str = HOMEPAGE, releases: str = RELEASES, log: bool = False) -> Result:
    version = plugin_version()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubectl-emqx-build-") as scratch:
        site = Path(scratch) / "site"
        pruned = stage(site)
        modules = smoke_import(site)
        if log:
            print(f"staged {len(pruned)} pruned paths; {modules} modules import from pure sources", file=sys.stderr)
        if with_bytecode:
            precompile(site)
        zipapp = out / EXECUTABLE
        ident, unpacked, count = build_zipapp(site, zipapp)
    archive = out / archive_name(version)
    build_tarball([(EXECUTABLE, zipapp, 0o755), ("LICENSE", LICENSE, 0o644)], archive)
    digest = sha256_file(archive)
    if manifest is not None:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(render_manifest(version, digest, unpacked, homepage, releases))
    return Result(version, archive, zipapp, digest, ident, archive.stat().st_size, unpacked, count, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dist_tools.build_plugin", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["build", "lock"], default="build")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="output directory (default: dist/)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST,
                        help="krew manifest to write (default: dist/emqx.yaml); its file name must be emqx.yaml")
    parser.add_argument("--no-manifest", action="store_true", help="do not write a manifest")
    parser.add_argument("--precompile", action="store_true",
                        help="also ship bytecode for this Python minor (faster first run there; not reproducible)")
    parser.add_argument("--homepage", default=HOMEPAGE)
    parser.add_argument("--releases", default=RELEASES, help="base URL: <releases>/v<version>/<archive>")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            LOCK_FILE.write_text(lock_text(lock_sections()))
            print(f"wrote {LOCK_FILE.relative_to(REPO_ROOT)}")
            return 0
        result = build(args.out, None if args.no_manifest else args.manifest, with_bytecode=args.precompile,
                       homepage=args.homepage, releases=args.releases, log=True)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"archive   {os.path.relpath(result.archive)}  {result.archive_bytes / 1e6:.1f} MB  sha256 {result.sha256}")
    print(f"plugin    {os.path.relpath(result.zipapp)}  ({result.files} files, {result.unpacked_bytes / 1e6:.1f} MB "
          f"unpacked on first run, build id {result.build_id})")
    if result.manifest is not None:
        print(f"manifest  {os.path.relpath(result.manifest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

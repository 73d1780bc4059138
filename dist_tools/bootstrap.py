"""kubectl-emqx launcher: the `__main__.py` of the self-extracting plugin archive (a zipapp).

The archive holds `__main__.py` (this file, with BUILD_ID filled in by dist_tools.build_plugin) and
the plugin with its pure-Python dependencies under `site/`. On the first run the launcher extracts
`site/` to `$KUBECTL_EMQX_CACHE_DIR/<build id>` (default `${XDG_CACHE_HOME:-~/.cache}/kubectl-emqx/
plugin/<build id>`), atomically, so that Python caches bytecode next to the sources; later runs
import from there. A zip imported in place would recompile every module on every run (zipimport
never writes bytecode), which costs seconds.

This file must run on any python3 from 3.6 on: when the interpreter is older than MIN_PYTHON it
re-executes the archive with `$KUBECTL_EMQX_PYTHON` or the newest `python3.N` on PATH, or explains
what is needed. Keep it free of annotations and newer syntax; it imports only the standard library.
"""

import os
import sys

BUILD_ID = "@BUILD_ID@"
MIN_PYTHON = (3, 11)
PAYLOAD_PREFIX = "site/"
COMPLETE_MARKER = ".complete"
PYTHON_ENV = "KUBECTL_EMQX_PYTHON"
CACHE_ENV = "KUBECTL_EMQX_CACHE_DIR"
NO_EXTRACT_ENV = "KUBECTL_EMQX_NO_EXTRACT"  # run from the archive (slow; for measurements and read-only homes)
REEXEC_ENV = "_KUBECTL_EMQX_REEXEC"  # set when re-executed under another Python: no second attempt
ARGV0_ENV = "_KUBECTL_EMQX_ARGV0"  # the name we were called by, kept across a re-exec
CANDIDATES = ("python3.14", "python3.13", "python3.12", "python3.11")


def archive_path():
    # Run as a zipapp, __file__ is "<archive>/__main__.py".
    return os.path.dirname(os.path.abspath(__file__))


def warn(message):
    sys.stderr.write("kubectl-emqx: " + message + "\n")


def ensure_python(archive):
    """Re-execute under a recent enough Python, or exit with an explanation."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return
    import shutil

    wanted = "{}.{}".format(*MIN_PYTHON)
    found = "{}.{}.{}".format(*sys.version_info[:3])
    candidates = []
    if os.environ.get(PYTHON_ENV):
        candidates.append(os.environ[PYTHON_ENV])
    candidates.extend(CANDIDATES)
    if not os.environ.get(REEXEC_ENV):
        for name in candidates:
            path = shutil.which(name)
            if path and os.path.realpath(path) != os.path.realpath(sys.executable):
                env = dict(os.environ)
                env[REEXEC_ENV] = "1"
                env.setdefault(ARGV0_ENV, os.path.basename(sys.argv[0]))
                try:
                    os.execve(path, [path, archive] + sys.argv[1:], env)
                except OSError as exc:
                    warn(f"cannot run {path}: {exc}")
    warn(
        f"needs Python >= {wanted} but runs on Python {found} ({sys.executable}).\n"
        f"Install Python {wanted} or newer (python3.11 ... python3.14 on PATH are found automatically),\n"
        f"or set {PYTHON_ENV} to its path."
    )
    sys.exit(1)


def cache_root():
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kubectl-emqx", "plugin")


def extract(archive, root, target):
    """Extract site/ into root/<tmp>, then rename to target; a concurrent winner is kept."""
    import shutil
    import tempfile
    import zipfile

    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=root)
    try:
        made = set()
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                if not info.filename.startswith(PAYLOAD_PREFIX) or info.is_dir():
                    continue
                path = os.path.join(tmp, *info.filename[len(PAYLOAD_PREFIX):].split("/"))
                directory = os.path.dirname(path)
                if directory not in made:
                    os.makedirs(directory, exist_ok=True)
                    made.add(directory)
                with open(path, "wb") as sink:
                    sink.write(bundle.read(info))
        with open(os.path.join(tmp, COMPLETE_MARKER), "w") as marker:
            marker.write(BUILD_ID + "\n")
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isfile(os.path.join(target, COMPLETE_MARKER)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Other builds' trees (an upgraded plugin leaves its predecessor behind) and abandoned
    # extractions: best effort; another process's extraction in progress is left alone.
    import time

    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            stale = not name.startswith(".extract-") or time.time() - os.path.getmtime(path) > 3600
        except OSError:
            continue
        if name != BUILD_ID and stale:
            shutil.rmtree(path, ignore_errors=True)


def site_dir(archive):
    """The directory to import the plugin from, or the archive's site/ when it cannot be extracted."""
    if os.environ.get(NO_EXTRACT_ENV):
        return os.path.join(archive, PAYLOAD_PREFIX.rstrip("/"))
    root = cache_root()
    target = os.path.join(root, BUILD_ID)
    if os.path.isfile(os.path.join(target, COMPLETE_MARKER)):
        return target
    try:
        extract(archive, root, target)
        return target
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the slow path
        warn(f"cannot unpack to {root} ({exc}); running from the archive, which is slower")
        return os.path.join(archive, PAYLOAD_PREFIX.rstrip("/"))


def isolate(site, archive):
    """Import only the archive's packages and the standard library: drop site-packages (the
    user's click or kubernetes must not mix with ours) and the archive itself."""
    excluded = {archive}
    if "site" in sys.modules:
        import site as site_module

        try:
            excluded.update(site_module.getsitepackages())
        except AttributeError:
            pass
        excluded.add(site_module.getusersitepackages())
    sys.path[:] = [site] + [entry for entry in sys.path if entry and entry not in excluded]


def main():
    archive = archive_path()
    ensure_python(archive)
    # The cache directory is ours alone: let Python keep bytecode there even when
    # PYTHONDONTWRITEBYTECODE is set, or every run would recompile.
    sys.dont_write_bytecode = False
    isolate(site_dir(archive), archive)
    name = os.environ.pop(ARGV0_ENV, None) or os.path.basename(sys.argv[0])
    os.environ.pop(REEXEC_ENV, None)
    if name.startswith("kubectl_complete-"):
        from kubectl_emqx.cli.completion import main as entry
    else:
        from kubectl_emqx.cli.main import main as entry
    entry()


if __name__ == "__main__":
    main()

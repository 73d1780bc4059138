"""operator/Dockerfile read as data, and its build stage replayed here: the same files copied, the
same ENV, the same RUN lines (with the venv path moved under a temporary directory), on the Python
minor the image's base has. No container runtime is needed (there is none here)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "operator" / "Dockerfile"
IMAGE_VENV = "/opt/emqx-operator"


def dockerfile_stages(path: Path = DOCKERFILE) -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages[1:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in stage:
        if instruction == "ENV":
            for item in shlex.split(arguments):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def base_python_minor(path: Path = DOCKERFILE) -> str:
    """"3.11" from `ARG PYTHON_IMAGE=python:3.11-slim-bookworm`."""
    match = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)", path.read_text(), re.M)
    assert match, "operator/Dockerfile has no ARG PYTHON_IMAGE=python:X.Y..."
    return match.group(1)


@dataclass
class BuiltVenv:
    venv: Path
    source: Path
    runs: list[str] = field(default_factory=list)
    runtime_env: dict[str, str] = field(default_factory=dict)  # the final stage's ENV, venv path moved

    @property
    def operator(self) -> Path:
        return self.venv / "bin" / "emqx-operator"

    def python(self, code: str) -> str:
        completed = subprocess.run([str(self.venv / "bin" / "python"), "-I", "-c", code], capture_output=True,
                                   text=True, timeout=60, cwd=self.venv, check=True)
        return completed.stdout


def _ignored(_: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]  # Dockerfile.dockerignore


def build_venv_as_the_image(root: Path, python: Path) -> BuiltVenv:
    """Replay the Dockerfile's build stage: COPY into a source tree, RUN with /opt/emqx-operator -> root/venv
    and `python` -> the given interpreter."""
    build, final = dockerfile_stages()[0], dockerfile_stages()[-1]
    source, venv, shim = root / "src", root / "venv", root / "shim"
    source.mkdir(parents=True)
    shim.mkdir()
    (shim / "python").symlink_to(python)
    # This machine's pip settings (its index, if any) stay; the Dockerfile's ENV goes over them.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(env_of(build))
    env["PATH"] = os.pathsep.join([str(shim), "/usr/bin", "/bin"])
    runs = []
    for instruction, arguments in build:
        if instruction == "WORKDIR":
            assert arguments == "/src", "the replay maps WORKDIR /src to its source tree"
        elif instruction == "COPY":
            *sources, target = shlex.split(arguments)
            destination = source / target
            for item in sources:
                origin = REPO / item
                if len(sources) > 1 or target.endswith("/"):
                    destination.mkdir(parents=True, exist_ok=True)
                    copy_to = destination / origin.name
                else:
                    copy_to = destination
                    copy_to.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, copy_to, ignore=_ignored)
                else:
                    shutil.copy2(origin, copy_to)
        elif instruction == "RUN":
            command = arguments.replace(IMAGE_VENV, str(venv))
            runs.append(command)
            completed = subprocess.run(["/bin/sh", "-c", command], cwd=source, env=env, capture_output=True,
                                       text=True, timeout=900, check=False)
            if completed.returncode != 0:
                raise AssertionError(f"RUN {command}\nexited {completed.returncode}:\n"
                                     f"{completed.stdout[-4000:]}{completed.stderr[-4000:]}")
    runtime_env = {key: value.replace(IMAGE_VENV, str(venv)) for key, value in env_of(final).items()}
    runtime_env["PATH"] = runtime_env.get("PATH", "").replace("$PATH", "/usr/bin:/bin")
    return BuiltVenv(venv, source, runs, runtime_env)


def python_for_minor(minor: str) -> Path | None:
    """An interpreter of that minor on this machine (this one first)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor:
        return Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    found = shutil.which(f"python{minor}")
    return Path(found) if found else None

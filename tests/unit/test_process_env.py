"""The image and the sandbox run the operator with the same environment (process_env.py)."""

from __future__ import annotations

import re
from pathlib import Path

from emqx_operator.process_env import PROCESS_ENV

DOCKERFILE = Path(__file__).resolve().parents[2] / "operator" / "Dockerfile"


def _image_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().split("\nFROM ${PYTHON_IMAGE}\n")[-1]  # the runtime stage
    block = re.search(r"^ENV (.*?)(?<!\\)\n", text, re.S | re.M)
    assert block is not None
    pairs = block.group(1).replace("\\\n", " ").split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_image_sets_every_process_variable_to_the_same_value() -> None:
    image = _image_env()
    assert {key: image.get(key) for key in PROCESS_ENV} == PROCESS_ENV

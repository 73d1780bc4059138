"""The sandbox's operator process is the image's: the same environment (process_env.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from emqx_operator.process_env import PROCESS_ENV

pytestmark = pytest.mark.integration


def test_the_operator_runs_with_the_image_environment(operator: Any) -> None:
    raw = Path(f"/proc/{operator.pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    assert {key: environ.get(key) for key in PROCESS_ENV} == PROCESS_ENV

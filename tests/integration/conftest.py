"""Integration-test hooks: every test here talks to the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _reset_simulator_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults, never-boot images and the clock speed are global to the simulator: reset them after each test."""
    yield
    if "emqx_sim" in request.fixturenames:
        sim = request.getfixturevalue("emqx_sim")
        sim.clear_faults()
        sim.allow_boot()
        sim.set_clock_speed(1)

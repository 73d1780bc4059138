"""--wait and status --watch: followed through the facade's watch (scripted in FakeCluster), no sleeps."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubectl_emqx.cli import wait
from kubectl_emqx.kube import errors
from kubectl_emqx.view import render
from tests.unit.cli_helpers import condition, emqx, fake_with, node, ready_status, run
from tests.unit.fake_cluster import FakeCluster, Hold, generation_reached

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = fake_with(emqx())
    monkeypatch.setattr(wait, "monotonic", cluster.clock)
    return cluster


def scaling(generation: int, message: str = "adding replicants") -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "phase": "Scaling",
        "message": message,
        "conditions": [
            condition("Ready", "False", "Scaling", generation=generation),
            condition("Progressing", "True", "Scaling", generation=generation),
        ],
    }


def interrupt(body: dict[str, Any]) -> None:
    raise KeyboardInterrupt


def test_wait_follows_the_watch_until_ready(fake: FakeCluster) -> None:
    fake.script_watch(
        scaling(2),
        {"emqxNodes": ready_status(replicants=4)["emqxNodes"], "replicantNodesStatus": {"readyReplicas": 4}},
        ready_status(replicants=5, generation=2),
    )
    result = run(fake, "scale", "replicants", "demo", "5", "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "default/demo: replicants 3 -> 5"
    assert [re.sub(STAMP, "T", line) for line in lines[1:]] == [
        "T demo: progressing, nodes on target 6/8: waiting for the operator to observe generation 2",
        "T demo: progressing, nodes on target 6/8: Scaling: adding replicants",
        "T demo: progressing, nodes on target 7/8: Scaling: adding replicants",
        "T demo: done, nodes on target 8/8: all nodes running",
        "default/demo is Ready: cores 3/3, replicants 5/5, image emqx/emqx:5.7.2",
    ]


def test_ready_of_an_older_generation_does_not_count(fake: FakeCluster) -> None:
    # The operator has not seen our write yet: its Ready=True is about generation 1.
    fake.script_watch(ready_status(generation=1), ready_status(replicants=4, generation=2))
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("done,") == 1


def test_wait_fails_with_the_operators_reason(fake: FakeCluster) -> None:
    fake.script_watch(
        scaling(2),
        {"phase": "Stalled", "message": "cannot pull emqx/emqx:5.7.9"},
    )
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.9", "--yes", "--wait")
    assert result.exit_code == 3
    assert result.stderr.endswith("error: default/demo failed: cannot pull emqx/emqx:5.7.9\n")


def test_wait_fails_when_the_operator_finds_the_spec_invalid(fake: FakeCluster) -> None:
    invalid = scaling(2)
    invalid["conditions"].append(condition("Valid", "False", "LicenseMissing", "set license.key", generation=2))
    fake.script_watch(invalid)
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 3
    assert "error: default/demo failed: LicenseMissing: set license.key" in result.stderr


def test_wait_times_out_with_the_last_state(fake: FakeCluster) -> None:
    fake.script_watch(scaling(2, "replicant 4 not ready"))
    result = run(fake, "scale", "replicants", "demo", "4", "--wait", "--timeout", "2m")
    assert result.exit_code == 4
    assert result.stderr.endswith(
        "error: timed out after 2m waiting for default/demo to become Ready; last state: Scaling: replicant 4 not "
        "ready; the change stays applied, follow it with `kubectl emqx status demo -n default -w`\n"
    )


def test_ctrl_c_says_the_change_stays(fake: FakeCluster) -> None:
    fake.script_watch(scaling(2), interrupt)
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 130
    assert "error: interrupted: the change stays applied; follow it with `kubectl emqx status demo" in result.stderr
    assert fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 4


def test_deleted_while_waiting(fake: FakeCluster) -> None:
    fake.script_watch("DELETE")
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 3
    assert "error: default/demo was deleted while waiting for it" in result.stderr


def test_delete_wait_ends_when_the_resource_is_gone(fake: FakeCluster) -> None:
    fake.script_watch({"phase": "Terminating"}, "DELETE")
    result = run(fake, "delete", "demo", "--yes", "--wait")
    assert result.exit_code == 0
    assert result.stderr.endswith("default/demo deletion requested\ndefault/demo deleted\n")


def test_create_wait(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "creating"), ready_status("fresh"))
    result = run(fake, "create", "fresh", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith("default/fresh is Ready: cores 3/3, replicants 3/3, image emqx/emqx:5.7.2\n")


def test_observe_rereads_after_each_window_and_after_expiry(fake: FakeCluster) -> None:
    reads = []
    original_get = fake.get_emqx

    def counting_get(name: str, namespace: str) -> dict[str, Any]:
        reads.append(name)
        return original_get(name, namespace)

    fake.get_emqx = counting_get  # type: ignore[method-assign]
    expired = iter([True])

    def watch(name: str, namespace: str, *, resource_version: str, timeout_seconds: int) -> Any:
        if next(expired, False):
            raise errors.WatchExpired("too old resource version")
        fake.clock.now += timeout_seconds
        return iter(())

    fake.watch_emqx = watch  # type: ignore[method-assign]
    deadline = fake.clock.now + 600
    seen = list(wait.observe(fake, "demo", "default", deadline))
    assert all(body is not None for body in seen)
    # first read, re-read after the expired watch, then one per 300 s window until the deadline
    assert len(reads) == len(seen) == 4


def test_live_view_redraws_in_place(fake: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    reporter = wait.ProgressReporter("demo", live=True, style=render.Style(color=False))
    body = emqx()
    body["status"]["phase"] = "Upgrading"
    from kubectl_emqx.view import status_model

    reporter.show(body, status_model.progress(body, 1))
    first = capsys.readouterr().err
    assert first.startswith("Waiting for default/demo (0s): Upgrading, nodes on target 6/6\n")
    assert "demo-core-0" in first
    body["status"]["emqxNodes"][0] = node("demo", "core", 0, status="stopped")
    reporter.show(body, status_model.progress(body, 1))
    second = capsys.readouterr().err
    assert second.startswith(f"\x1b[{first.count(chr(10))}F\x1b[J")
    reporter.show(body, status_model.progress(body, 1))
    assert capsys.readouterr().err == ""  # nothing changed, nothing drawn


def test_status_watch_prints_each_change_until_interrupted(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "one"), scaling(1, "two"), interrupt)
    result = run(fake, "status", "demo", "-w", "--no-headers")
    assert result.exit_code == 0
    assert result.stdout.count("Name:") == 3
    assert "Phase:      Scaling (one)" in result.stdout and "Phase:      Scaling (two)" in result.stdout


def test_status_watch_yaml_separates_documents(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "one"), interrupt)
    result = run(fake, "status", "demo", "-w", "-o", "yaml")
    assert result.stdout.count("\n---\n") == 1


# --- the live view keeps time; verdicts come at once, for the generation written -------------


def upgrading(
    fake: FakeCluster, generation: int, *, image: str = "emqx/emqx:5.7.3", waited: float = 0
) -> dict[str, Any]:
    """demo rolling to `image`: demo-core-2 being replaced (its pull failing), the rest waiting."""
    return {
        "observedGeneration": generation, "phase": "Upgrading", "targetImage": image,
        "currentImage": "emqx/emqx:5.7.2", "previousImage": "emqx/emqx:5.7.2",
        "message": "replacing cores one at a time (demo-core-2 left)",
        "conditions": [condition("Ready", "False", "RollingCores", generation=generation),
                       condition("UpgradeStalled", "False", "NotStalled", generation=generation),
                       condition("Progressing", "True", "RollingCores", generation=generation)],
        "pendingNodes": [
            {"pod": "demo-core-2", "role": "core", "since": fake.clock.stamp(waited),
             "waitingFor": 'ErrImagePull: failed to pull image "emqx/emqx:5.7.3": manifest unknown'},
        ],
        "upgrade": {"phase": "Cores", "step": {"pod": "demo-core-2", "since": fake.clock.stamp(waited),
                                               "generation": generation}},
    }


def stalled(generation: int) -> dict[str, Any]:
    message = ('demo-core-2: ErrImagePull: failed to pull image "emqx/emqx:5.7.3": manifest unknown; '
               "no further node is touched: `kubectl emqx upgrade demo --rollback`")
    return {
        "phase": "Stalled", "message": message,
        "conditions": [condition("Ready", "False", "UpgradeStalled", message, generation=generation),
                       condition("UpgradeStalled", "True", "NodeNotRunning", message, generation=generation),
                       condition("Progressing", "False", "UpgradeStalled", message, generation=generation)],
        "upgrade": {"phase": "Stalled", "step": {"stalled": "demo-core-2: ErrImagePull"}},
    }


def live(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reporter draws the live view (stderr is no terminal under CliRunner)."""
    monkeypatch.setattr(wait, "_reporter",
                        lambda name, title="": wait.ProgressReporter(name, True, render.Style(), title))


def frames(stderr: str) -> list[str]:
    """The live views drawn, in order (each redraw starts by moving up over the previous one)."""
    return [frame for frame in re.split(r"\x1b\[\d+F\x1b\[J", stderr) if "Waiting for" in frame]


def test_live_view_redraws_every_second_while_the_watch_is_quiet(
    fake: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert wait.TICK_SECONDS <= 1
    live(monkeypatch)
    fake.script_watch(lambda body: body["status"].update(upgrading(fake, 2)), Hold(4), {
        **ready_status(image="emqx/emqx:5.7.3", generation=2), "pendingNodes": None, "upgrade": {"step": None}})
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--yes", "--wait")
    assert result.exit_code == 0, result.output
    drawn = frames(result.stderr)
    # No watch event for 4 s, yet the view was redrawn with its clocks moving, one second at a time.
    elapsed = [int(re.search(r"\((\d+)s\)", frame).group(1)) for frame in drawn]  # type: ignore[union-attr]
    assert elapsed == sorted(elapsed) and {1, 2, 3, 4, 5} <= set(elapsed), elapsed
    waited = [re.search(r"demo-core-2 +core +running 5.7.2 +(\d+)s +ErrImagePull", frame) for frame in drawn]
    assert sorted({int(match.group(1)) for match in waited if match}) == [1, 2, 3, 4, 5]
    countdown = [re.search(r"gives up on demo-core-2 in (\S+) unless it is replaced", frame) for frame in drawn]
    assert {"9m59s", "9m58s", "9m57s", "9m56s"} <= {match.group(1) for match in countdown if match}
    assert "gives up" not in drawn[-1] and "demo-core-2          core       running 5.7.3          done" in drawn[-1]
    assert fake.ticks >= 8  # 4 s of quiet at TICK_SECONDS each


def test_a_stall_ends_the_wait_at_once_with_the_reason_and_the_one_command(fake: FakeCluster) -> None:
    stalled_at: list[float] = []

    def stall(body: dict[str, Any]) -> None:
        stalled_at.append(fake.clock.now + 1)  # the fake clock moves 1 s per event
        body["status"] = {**body["status"], **stalled(2)}

    fake.script_watch(lambda body: body.update(status=upgrading(fake, 2)), Hold(3), stall, Hold(30))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--yes", "--wait")
    assert result.exit_code == 3
    assert fake.clock.now - stalled_at[0] < 2
    assert result.stderr.endswith(
        'error: default/demo stalled: NodeNotRunning: demo-core-2: ErrImagePull: failed to pull image '
        '"emqx/emqx:5.7.3": manifest unknown; no further node is touched: `kubectl emqx upgrade demo --rollback`\n'
        "  to recover: kubectl emqx upgrade demo -n default --rollback --yes --wait\n"
    )
    # Line mode (no terminal) names the waiting node once, when what it waits for changes.
    assert result.stderr.count('demo:   demo-core-2 (core): ErrImagePull: failed to pull image') == 1


def test_the_rollback_one_liner_ignores_the_stall_it_cures(fake: FakeCluster) -> None:
    body = fake.stored("demo")
    body["spec"]["image"] = "emqx/emqx:5.7.3"
    body["metadata"]["generation"] = 2
    body["status"] = {**upgrading(fake, 2), **stalled(2)}
    fake.script_watch(
        {"message": "still the old verdict"},  # the operator has not seen generation 3 yet
        lambda current: current.update(status={**upgrading(fake, 3, image="emqx/emqx:5.7.2")}),
        ready_status(generation=3),
    )
    result = run(fake, "upgrade", "demo", "--rollback", "--yes", "--wait")
    assert result.exit_code == 0, result.output
    assert fake.writes[0][2]["spec"] == {"image": "emqx/emqx:5.7.2"}  # no allowDowngrade: nothing ran 5.7.3
    assert ("\nthe rollout to emqx/emqx:5.7.3 stalled (the cluster ran emqx/emqx:5.7.2 when last Ready); rolling "
            "back replaces the nodes it already changed\n") in result.stderr
    assert "error:" not in result.stderr
    assert result.stderr.endswith("default/demo is Ready: cores 3/3, replicants 3/3, image emqx/emqx:5.7.2\n")


def test_create_with_an_image_that_cannot_be_pulled_fails_fast_and_the_fix_works(fake: FakeCluster) -> None:
    message = 'fresh-core-0: ErrImagePull: failed to pull image "emqx/emqx:5.7.3": manifest unknown'
    fake.script_watch({"observedGeneration": 1, "phase": "Stalled", "message": message, "conditions": [
        condition("Ready", "False", "ErrImagePull", message),
        condition("Progressing", "False", "ErrImagePull", f"{message}; fix the cause and re-apply the resource"),
    ], "pendingNodes": [{"pod": "fresh-core-0", "role": "core", "waitingFor": message.split(": ", 1)[1]}]})
    result = run(fake, "create", "fresh", "--image", "emqx/emqx:5.7.3", "--wait")
    assert result.exit_code == 3
    assert result.stderr.endswith(
        f"error: default/fresh failed: ErrImagePull: {message}; fix the cause and re-apply the resource\n"
        "  to recover: kubectl emqx upgrade fresh -n default --image emqx/emqx:5.7.2 --yes --wait\n"
    )
    # Nothing ever ran 5.7.3: going to 5.7.2 is no downgrade, and needs no allowDowngrade.
    fake.script_watch(ready_status("fresh", generation=2))
    fixed = run(fake, "upgrade", "fresh", "--image", "emqx/emqx:5.7.2", "--yes", "--wait")
    assert fixed.exit_code == 0, fixed.output
    assert "no node of default/fresh has run yet: there is no version to protect" in fixed.stderr
    assert fake.writes[-1][2]["spec"] == {"image": "emqx/emqx:5.7.2"}


def test_the_default_timeout_outlasts_the_operators_own(fake: FakeCluster) -> None:
    body = fake.stored("demo")
    body["spec"]["updateStrategy"] = {"nodeReadyTimeoutSeconds": 3000}  # 50 min, above the default 30 min
    status = upgrading(fake, 2)
    reporter_now = fake.clock.wall
    deadline = wait.Deadline(None, reporter_now)
    assert deadline.at == fake.clock.now + wait.DEFAULT_TIMEOUT_SECONDS
    deadline.stretch_for({**body, "status": status})
    assert deadline.at == fake.clock.now + 3000 + wait.VERDICT_MARGIN_SECONDS
    explicit = wait.Deadline(120, reporter_now)
    explicit.stretch_for({**body, "status": status})
    assert explicit.at == fake.clock.now + 120  # --timeout is the user's word


def test_timeout_says_when_the_operator_gives_up(fake: FakeCluster) -> None:
    fake.script_watch(lambda body: body.update(status=upgrading(fake, 2)))
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.3", "--yes", "--wait", "--timeout", "1m")
    assert result.exit_code == 4
    assert "error: timed out after 1m waiting for default/demo to become Ready; last state: Upgrading: replacing" in (
        result.stderr)
    assert "; the operator gives up on demo-core-2 at 2026-01-01T00:26:40Z unless it is replaced;" in result.stderr


# --- multi-step upgrades, hop by hop ------------------------------------------------------------


def on(image: str, generation: int, *, nodes_on: str | None = None) -> dict[str, Any]:
    """Ready on `image` at `generation`; `nodes_on` makes EMQX report another version on one core."""
    status = ready_status(image=image, cores=3, replicants=0, generation=generation)
    if nodes_on:
        status["emqxNodes"][0]["version"] = nodes_on
    return status


def test_a_multi_step_upgrade_goes_hop_by_hop_each_verified_through_emqx(fake: FakeCluster) -> None:
    fake.objects.clear()
    fake.add(emqx(image="emqx/emqx:5.6.1", replicants=0))
    seen_generation: list[int] = []
    fake.script_watch(
        generation_reached(2),
        on("emqx/emqx:5.7.2", 2, nodes_on="5.6.1"),  # Ready, yet EMQX still reports a node on 5.6.1
        lambda body: seen_generation.append(body["metadata"]["generation"]),
        on("emqx/emqx:5.7.2", 2),
        generation_reached(3),
        on("emqx/emqx:5.8.9", 3),
    )
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes", "--wait")
    assert result.exit_code == 0, result.output
    assert [write[2]["spec"]["image"] for write in fake.writes] == ["emqx/emqx:5.7.2", "emqx/emqx:5.8.9"]
    assert seen_generation == [2]  # hop 2 was not written while EMQX disagreed
    assert "progressing, nodes on target 2/3: EMQX reports 2/3 nodes running 5.7.2 (others run 5.6.1)" in result.stderr
    assert "hop 1/2: default/demo: image emqx/emqx:5.6.1 -> emqx/emqx:5.7.2; the operator rolls the nodes now" in (
        result.stderr)
    assert "hop 1/2 done: every node runs emqx/emqx:5.7.2, as EMQX reports\n" in result.stderr
    assert result.stderr.endswith("default/demo is Ready: cores 3/3, replicants 0/0, image emqx/emqx:5.8.9\n")


def test_a_failed_hop_stops_with_a_clear_state(fake: FakeCluster) -> None:
    fake.objects.clear()
    fake.add(emqx(image="emqx/emqx:5.6.1", replicants=0))
    fake.script_watch(generation_reached(2), on("emqx/emqx:5.7.2", 2), generation_reached(3),
                      {**stalled(3), "observedGeneration": 3, "currentImage": "emqx/emqx:5.7.2",
                       "previousImage": "emqx/emqx:5.7.2"})
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes", "--wait")
    assert result.exit_code == 3
    tail = result.stderr.split("error: ", 1)[1].splitlines()
    assert tail[0].startswith(
        "hop 2/2 (emqx/emqx:5.7.2 -> emqx/emqx:5.8.9) failed: default/demo stalled: NodeNotRunning")
    assert tail[1:] == [
        "  hop 1 is done; the cluster ran emqx/emqx:5.7.2 when last Ready",
        "  to recover: kubectl emqx upgrade demo -n default --rollback --yes --wait",
        "  to continue from what runs then, re-run: kubectl emqx upgrade demo -n default --image emqx/emqx:5.8.9 "
        "--yes --wait",
    ]


def test_ctrl_c_during_a_hop_and_the_same_command_continues(fake: FakeCluster) -> None:
    fake.objects.clear()
    fake.add(emqx(image="emqx/emqx:5.6.1", replicants=0))
    fake.script_watch(generation_reached(2), scaling(2, "replacing demo-core-2"), interrupt)
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes", "--wait")
    assert result.exit_code == 130
    assert "error: hop 1/2 (emqx/emqx:5.6.1 -> emqx/emqx:5.7.2) interrupted: interrupted: the change stays applied" in (
        result.stderr)
    assert "  no hop is done\n" in result.stderr
    assert fake.stored("demo")["spec"]["image"] == "emqx/emqx:5.7.2"  # the operator goes on with hop 1
    # Re-running the same command follows hop 1 (written already), then writes hop 2.
    fake.script_watch(on("emqx/emqx:5.7.2", 2), generation_reached(3), on("emqx/emqx:5.8.9", 3))
    again = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.8.9", "--yes", "--wait")
    assert again.exit_code == 0, again.output
    assert "hop 1/2: set spec.image: emqx/emqx:5.6.1 -> emqx/emqx:5.7.2 (already requested: followed)" in again.stderr
    assert "hop 1/2: default/demo already asks for emqx/emqx:5.7.2; following it" in again.stderr
    assert [write[2]["spec"]["image"] for write in fake.writes] == ["emqx/emqx:5.7.2", "emqx/emqx:5.8.9"]


def test_status_watch_on_a_terminal_keeps_its_clocks_moving(fake: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_emqx.cli import status

    monkeypatch.setattr(status, "_stdout_is_terminal", lambda: True)
    fake.script_watch(lambda body: body["status"].update(upgrading(fake, 1)), Hold(3), interrupt)
    result = run(fake, "status", "demo", "-w", "--color", "never")
    assert result.exit_code == 0, result.output
    first, *redraws = result.stdout.split(status.CLEAR_SCREEN)
    assert len(redraws) == 1  # the screen is cleared once, then repainted in place
    frames = redraws[0].split("\x1b[H")
    waited = [re.search(r"demo-core-2 +core +(\d+)s +ErrImagePull", frame) for frame in frames]
    assert sorted({int(match.group(1)) for match in waited if match}) == [1, 2, 3, 4]
    assert all(line.endswith("\x1b[K") for line in frames[-1].split("\n")[:-1])
    assert "Recover" not in result.stdout


def test_an_operator_that_never_answers_is_named(fake: FakeCluster) -> None:
    fake.script_watch(Hold(40))
    result = run(fake, "scale", "replicants", "demo", "4", "--wait", "--timeout", "1m")
    assert result.exit_code == 4
    hinted = ("waiting for the operator to observe generation 2 (no answer for 30s: is the operator running? "
              "`kubectl emqx version` shows it)")
    assert f"demo: progressing, nodes on target 6/7: {hinted}\n" in result.stderr
    assert result.stderr.count("no answer for 30s") == 2  # once as it happens, once in the timeout error

from __future__ import annotations

import pytest

from kubectl_emqx.domain import versions
from kubectl_emqx.domain.versions import ENTERPRISE, OPENSOURCE, check_upgrade, parse_image

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "edition", "version", "tag"),
    [
        ("emqx/emqx:5.0.6", OPENSOURCE, (5, 0, 6), "5.0.6"),
        ("emqx/emqx-enterprise:5.8.9", ENTERPRISE, (5, 8, 9), "5.8.9"),
        ("docker.io/emqx/emqx:5.8.1", OPENSOURCE, (5, 8, 1), "5.8.1"),
        ("public.ecr.aws/emqx/emqx:5.7.2", OPENSOURCE, (5, 7, 2), "5.7.2"),
        ("localhost:5000/emqx/emqx-enterprise:5.6.1", ENTERPRISE, (5, 6, 1), "5.6.1"),
        ("registry.example.com:443/mirror/emqx/emqx:5.3.2", OPENSOURCE, (5, 3, 2), "5.3.2"),
        ("emqx:5.8.9", OPENSOURCE, (5, 8, 9), "5.8.9"),  # Docker official image
        ("emqx/emqx:5.8.1-elixir", OPENSOURCE, (5, 8, 1), "5.8.1-elixir"),
        (f"emqx/emqx:5.8.3@{DIGEST}", OPENSOURCE, (5, 8, 3), "5.8.3"),
        # From 5.9 every build is Enterprise, whatever the repository says.
        ("emqx/emqx:5.9.0", ENTERPRISE, (5, 9, 0), "5.9.0"),
        ("emqx/emqx-enterprise:5.10.1", ENTERPRISE, (5, 10, 1), "5.10.1"),
    ],
)
def test_parse_image(image: str, edition: str, version: versions.Version, tag: str) -> None:
    info = parse_image(image)
    assert (info.edition, info.version, info.tag) == (edition, version, tag)
    assert info.version_known and info.repository_known


def test_partial_and_latest_tags_resolve_to_newest_known_patch() -> None:
    newest_58 = max(v for v in versions.KNOWN_VERSIONS[OPENSOURCE] if v[:2] == (5, 8))
    assert parse_image("emqx/emqx:5.8").version == newest_58
    assert parse_image("emqx/emqx:latest").version == max(versions.KNOWN_VERSIONS[OPENSOURCE])
    assert parse_image("emqx/emqx").version == max(versions.KNOWN_VERSIONS[OPENSOURCE])
    assert parse_image("emqx/emqx-enterprise:latest").version == max(versions.KNOWN_VERSIONS[ENTERPRISE])
    five_nine = parse_image("emqx/emqx:5.9")
    assert five_nine.edition == ENTERPRISE and five_nine.version[:2] == (5, 9)
    assert parse_image("emqx/emqx:5.99").version == (5, 99, 0)


def test_unknown_version_and_repository_are_flagged() -> None:
    digest_only = parse_image(f"emqx/emqx@{DIGEST}")
    assert not digest_only.version_known and digest_only.digest == DIGEST
    assert not parse_image("emqx/emqx:nightly").version_known
    custom = parse_image("mycorp/broker:5.8.1")
    assert not custom.repository_known and custom.version == (5, 8, 1)


def test_known_versions_table() -> None:
    for edition in (OPENSOURCE, ENTERPRISE):
        table = versions.KNOWN_VERSIONS[edition]
        assert all(isinstance(otp, str) and "/" in otp for otp in table.values())
    assert (5, 8, 9) in versions.KNOWN_VERSIONS[OPENSOURCE]
    assert not any(v >= (5, 9, 0) for v in versions.KNOWN_VERSIONS[OPENSOURCE])
    assert versions.otp_release(OPENSOURCE, (5, 8, 9)) == "26.2.5-3/14.2.5"
    assert versions.otp_release(OPENSOURCE, (4, 4, 0)) is None


def test_parse_and_format_version() -> None:
    assert versions.parse_version("e5.8.9") == (5, 8, 9)
    assert versions.parse_version("v5.1") == (5, 1, 0)
    assert versions.format_version((5, 10, 2)) == "5.10.2"
    with pytest.raises(ValueError):
        versions.parse_version("five")


def test_feature_gates() -> None:
    assert not versions.supports_config_put((5, 1, 0)) and versions.supports_config_put((5, 1, 1))
    assert not versions.supports_ignore_readonly((5, 6, 1)) and versions.supports_ignore_readonly((5, 7, 0))
    assert versions.uses_db_role_env((5, 0, 25)) and not versions.uses_db_role_env((5, 0, 26))
    assert versions.role_env_name((5, 0, 6)) == "EMQX_NODE__DB_ROLE"
    assert versions.role_env_name((5, 8, 9)) == "EMQX_NODE__ROLE"
    assert versions.replicants_allowed(OPENSOURCE, (5, 7, 2))
    assert not versions.replicants_allowed(OPENSOURCE, (5, 8, 0))
    assert versions.replicants_allowed(ENTERPRISE, (5, 8, 9))
    assert not versions.needs_license_for_cluster((5, 8, 9)) and versions.needs_license_for_cluster((5, 9, 0))
    assert not versions.supports_evacuation(OPENSOURCE, (5, 8, 9))
    assert not versions.supports_evacuation(ENTERPRISE, (5, 0, 3))
    assert versions.supports_evacuation(ENTERPRISE, (5, 0, 4))
    assert versions.supports_evacuation(OPENSOURCE, (5, 9, 0))
    assert not versions.replicant_needs_same_version_core((5, 5, 1))
    assert versions.replicant_needs_same_version_core((5, 6, 0))
    assert versions.supports_bootstrap_api_keys((5, 0, 14)) and not versions.supports_bootstrap_api_keys((5, 0, 13))


# (from, to, keyword arguments, the rules expected to be violated)
POLICY_TABLE = [
    ("emqx/emqx:5.0.6", "emqx/emqx:5.0.26", {}, []),
    ("emqx/emqx:5.8.1", "emqx/emqx:5.8.9", {"replicants": 0}, []),
    ("emqx/emqx:5.6.1", "emqx/emqx:5.7.0", {"replicants": 3}, []),
    ("emqx/emqx:5.6.1", "emqx/emqx:5.8.0", {"replicants": 0}, ["one-minor-step"]),
    ("emqx/emqx:5.0.26", "emqx/emqx:5.3.2", {}, ["one-minor-step"]),
    ("emqx/emqx:5.8.9", "emqx/emqx:5.8.1", {}, ["downgrade"]),
    ("emqx/emqx:5.8.9", "emqx/emqx:5.8.1", {"allow_downgrade": True}, []),
    ("emqx/emqx:5.7.0", "emqx/emqx:5.6.1", {"allow_downgrade": True}, []),
    ("emqx/emqx:5.7.0", "emqx/emqx:5.5.1", {"allow_downgrade": True}, ["one-minor-step"]),
    ("emqx/emqx:4.4.19", "emqx/emqx:5.0.0", {}, ["major-change"]),
    ("emqx/emqx-enterprise:5.10.4", "emqx/emqx-enterprise:6.0.0", {"license_configured": True}, ["major-change"]),
    ("emqx/emqx:5.7.2", "emqx/emqx:5.8.0", {"replicants": 2}, ["no-opensource-replicants"]),
    ("emqx/emqx-enterprise:5.7.2", "emqx/emqx-enterprise:5.8.0", {"replicants": 2}, []),
    ("emqx/emqx-enterprise:5.8.9", "emqx/emqx-enterprise:5.9.0", {"cores": 3, "replicants": 2}, ["license-required"]),
    (
        "emqx/emqx-enterprise:5.8.9",
        "emqx/emqx-enterprise:5.9.0",
        {"cores": 3, "replicants": 2, "license_configured": True},
        [],
    ),
    ("emqx/emqx-enterprise:5.9.0", "emqx/emqx-enterprise:5.9.1", {"cores": 1}, []),
    ("emqx/emqx:5.8.9", "emqx/emqx-enterprise:5.9.0", {"cores": 3}, ["opensource-to-licensed"]),
    ("emqx/emqx:5.8.9", "emqx/emqx-enterprise:5.9.0", {"cores": 3, "license_configured": True}, []),
    ("emqx/emqx:5.8.9", "emqx/emqx-enterprise:5.9.0", {"cores": 1}, []),
    (f"emqx/emqx@{DIGEST}", "emqx/emqx:5.8.9", {}, ["unknown-version"]),
]


@pytest.mark.parametrize(("source", "target", "kwargs", "rules"), POLICY_TABLE)
def test_upgrade_policy(source: str, target: str, kwargs: dict, rules: list[str]) -> None:
    violations = check_upgrade(source, target, **kwargs)
    assert [v.rule for v in violations] == rules
    assert all(v.message for v in violations)


def test_policy_messages_say_what_to_do() -> None:
    (skip,) = check_upgrade("emqx/emqx:5.0.26", "emqx/emqx:5.3.2")
    assert "5.1.x" in skip.message
    (downgrade,) = check_upgrade("emqx/emqx:5.8.9", "emqx/emqx:5.8.1")
    assert "allowDowngrade" in downgrade.message
    (license_rule,) = check_upgrade("emqx/emqx-enterprise:5.8.9", "emqx/emqx-enterprise:5.9.0", cores=3)
    assert "license.key" in license_rule.message


# --- multi-step paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target", "kwargs", "images"), [
    # one minor or less: one hop
    ("emqx/emqx:5.7.2", "emqx/emqx:5.7.3", {}, ["emqx/emqx:5.7.3"]),
    ("emqx/emqx:5.7.2", "emqx/emqx:5.8.9", {}, ["emqx/emqx:5.8.9"]),
    # through the newest known patch of every minor in between
    ("emqx/emqx:5.6.1", "emqx/emqx:5.8.9", {}, ["emqx/emqx:5.7.2", "emqx/emqx:5.8.9"]),
    ("emqx/emqx:5.0.26", "emqx/emqx:5.3.2", {}, ["emqx/emqx:5.1.6", "emqx/emqx:5.2.1", "emqx/emqx:5.3.2"]),
    ("emqx/emqx-enterprise:5.6.1", "emqx/emqx-enterprise:5.10.4", {"cores": 3, "license_configured": True},
     ["emqx/emqx-enterprise:5.7.2", "emqx/emqx-enterprise:5.8.9", "emqx/emqx-enterprise:5.9.1",
      "emqx/emqx-enterprise:5.10.4"]),
    # the target's registry and repository; its digest only on the last hop; a partial tag as given
    ("emqx/emqx:5.5.1", f"registry.local:5000/mirror/emqx/emqx:5.7.2@{DIGEST}", {},
     ["registry.local:5000/mirror/emqx/emqx:5.6.1", f"registry.local:5000/mirror/emqx/emqx:5.7.2@{DIGEST}"]),
    ("emqx/emqx:5.5.1", "emqx/emqx:5.7", {}, ["emqx/emqx:5.6.1", "emqx/emqx:5.7"]),
    # never across majors, never several minors down: one hop, refused as such
    ("emqx/emqx-enterprise:5.10.4", "emqx/emqx-enterprise:6.0.1", {}, ["emqx/emqx-enterprise:6.0.1"]),
    ("emqx/emqx:5.8.9", "emqx/emqx:5.6.1", {"allow_downgrade": True}, ["emqx/emqx:5.6.1"]),
])
def test_upgrade_path_hops(source: str, target: str, kwargs: dict, images: list[str]) -> None:
    path = versions.upgrade_path(source, target, **kwargs)
    assert list(path.images) == images
    assert [hop.from_image for hop in path.hops] == [source, *images[:-1]]
    assert path.hops[-1].why == "the target"
    assert all("one minor release at a time" in hop.why for hop in path.hops[:-1])


def test_a_path_is_checked_at_every_hop() -> None:
    # Opensource 5.8 refuses replicants: the second hop breaks the policy, the first does not.
    path = versions.upgrade_path("emqx/emqx:5.6.1", "emqx/emqx:5.8.9", replicants=3, cores=3)
    assert [(index, violation.rule) for index, violation in path.violations] == [(1, "no-opensource-replicants")]
    # 5.9 needs a licence for a cluster: the hop into 5.9 says so.
    path = versions.upgrade_path("emqx/emqx-enterprise:5.7.2", "emqx/emqx-enterprise:5.10.4", cores=3)
    assert [(index, violation.rule) for index, violation in path.violations] == [
        (1, "license-required"), (2, "license-required")]
    assert [(index, v.rule) for index, v in versions.upgrade_path("emqx/emqx:5.8.9", "emqx/emqx:5.6.1").violations] == [
        (0, "one-minor-step"), (0, "downgrade")]
    assert [v.rule for _, v in versions.upgrade_path("emqx/emqx-enterprise:5.10.4",
                                                     "emqx/emqx-enterprise:6.0.1").violations] == ["major-change"]


def test_known_release_like_suggests_the_newest_patch_of_the_minor() -> None:
    assert versions.known_release_like("emqx/emqx:5.7.3") == "emqx/emqx:5.7.2"
    assert versions.known_release_like("emqx/emqx:5.7.2") is None
    assert versions.known_release_like("emqx/emqx:5.7.99") == "emqx/emqx:5.7.2"
    assert versions.known_release_like("emqx/emqx-enterprise:6.99.0") == "emqx/emqx-enterprise:6.2.2"

"""EMQX image references, editions, version feature gates and the upgrade policy (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

Version = tuple[int, int, int]

OPENSOURCE = "Opensource"
ENTERPRISE = "Enterprise"
EDITIONS = (OPENSOURCE, ENTERPRISE)

OPENSOURCE_REPOSITORY = "emqx/emqx"
ENTERPRISE_REPOSITORY = "emqx/emqx-enterprise"

# Last path segment of the repository -> edition. Matching on the last segment accepts any
# registry or mirror prefix (docker.io/emqx/emqx, public.ecr.aws/emqx/emqx, registry.local/mirror/emqx).
_EDITION_BY_REPOSITORY_NAME = {"emqx": OPENSOURCE, "emqx-enterprise": ENTERPRISE}

# From 5.9.0 there is one BSL product, published as emqx/emqx-enterprise.
UNIFIED_EDITION_SINCE: Version = (5, 9, 0)


def _series(major: int, minor: int, last_patch: int, otp_release: str, first_patch: int = 0) -> dict[Version, str]:
    return {(major, minor, patch): otp_release for patch in range(first_patch, last_patch + 1)}


_OTP_24 = "24.3.4.2-1/12.3.2.2"
_OTP_25 = "25.3.2-2/13.2.2.4"
_OTP_26 = "26.2.5-3/14.2.5"
_OTP_26_2 = "26.2.5.2-1/14.2.5.1"
_OTP_27 = "27.3.4.2-2/15.2.7.1"
_OTP_28 = "28.1-1/16.1"

# Releases kubectl-emqx knows about, per edition, with the `otp_release` string GET /api/v5/nodes
# reports for them (approximate; used by the simulator). Tags like `latest` or `5.8` resolve to
# the newest entry matching them.
KNOWN_VERSIONS: Mapping[str, Mapping[Version, str]] = MappingProxyType(
    {
        OPENSOURCE: MappingProxyType(
            {
                **_series(5, 0, 26, _OTP_24),
                **_series(5, 1, 6, _OTP_25),
                **_series(5, 2, 1, _OTP_25),
                **_series(5, 3, 2, _OTP_25),
                **_series(5, 4, 1, _OTP_25),
                **_series(5, 5, 1, _OTP_25),
                **_series(5, 6, 1, _OTP_25),
                (5, 7, 0): _OTP_25,
                **_series(5, 7, 2, _OTP_26, first_patch=1),
                **_series(5, 8, 9, _OTP_26),
            }
        ),
        ENTERPRISE: MappingProxyType(
            {
                **_series(5, 0, 4, _OTP_24),
                **_series(5, 1, 1, _OTP_25),
                **_series(5, 2, 1, _OTP_25),
                **_series(5, 3, 2, _OTP_25),
                **_series(5, 4, 1, _OTP_25),
                **_series(5, 5, 1, _OTP_25),
                **_series(5, 6, 1, _OTP_25),
                (5, 7, 0): _OTP_25,
                **_series(5, 7, 2, _OTP_26, first_patch=1),
                **_series(5, 8, 9, _OTP_26),
                **_series(5, 9, 1, _OTP_26_2),
                **_series(5, 10, 4, _OTP_26_2),
                **_series(6, 0, 1, _OTP_27),
                (6, 1, 0): _OTP_28,
                **_series(6, 2, 2, _OTP_28),
            }
        ),
    }
)

_VERSION_TAG = re.compile(r"^[ve]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?$")


@dataclass(frozen=True)
class ImageInfo:
    """What an image reference says about the EMQX it runs."""

    image: str
    repository: str  # without registry host, tag or digest, e.g. "emqx/emqx"
    tag: str  # raw tag as written ("" when the reference has none)
    digest: str  # "sha256:..." or ""
    edition: str  # OPENSOURCE or ENTERPRISE
    version: Version  # resolved; see version_known
    version_known: bool  # False when the tag does not name a version (digest only, custom tag)
    repository_known: bool  # False for repositories other than emqx/emqx and emqx/emqx-enterprise

    @property
    def version_string(self) -> str:
        return format_version(self.version)


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def parse_version(text: str) -> Version:
    """ "5.8.9", "v5.8.9", "e5.8.9" or "5.8" -> (5, 8, 9) / (5, 8, 0). Raises ValueError."""
    match = _VERSION_TAG.match(text.strip())
    if not match:
        raise ValueError(f"not an EMQX version: {text!r}")
    major, minor, patch = (int(part) if part is not None else 0 for part in match.groups())
    return (major, minor, patch)


def split_image_reference(image: str) -> tuple[str, str, str, str]:
    """-> (registry, repository, tag, digest); registry "" when the reference names none."""
    rest, _, digest = image.strip().partition("@")
    last_slash = rest.rfind("/")
    tag = ""
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    registry = ""
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    return registry, rest, tag, digest


def newest_known(edition: str, major: int | None = None, minor: int | None = None) -> Version | None:
    candidates = [
        version
        for version in KNOWN_VERSIONS[edition]
        if (major is None or version[0] == major) and (minor is None or version[1] == minor)
    ]
    return max(candidates) if candidates else None


def _resolve_tag(tag: str, edition: str) -> tuple[Version, bool]:
    """-> (version, whether the tag names it); unknown tags resolve to the newest known release."""
    if tag == "latest":
        newest = newest_known(edition)
        assert newest is not None
        return newest, True
    match = _VERSION_TAG.match(tag)
    if not match:
        newest = newest_known(edition)
        assert newest is not None
        return newest, False
    major_text, minor_text, patch_text = match.groups()
    major = int(major_text)
    minor = int(minor_text) if minor_text is not None else None
    if patch_text is not None and minor is not None:
        return (major, minor, int(patch_text)), True
    if (major, minor or 0, 0) >= UNIFIED_EDITION_SINCE:
        edition = ENTERPRISE
    resolved = newest_known(edition, major, minor)
    return (resolved if resolved is not None else (major, minor or 0, 0)), True


def parse_image(image: str) -> ImageInfo:
    """Edition and version of an image reference (any registry prefix, tag and/or digest).

    `emqx/emqx` is Opensource and `emqx/emqx-enterprise` Enterprise, except that every release from
    5.9.0 is Enterprise. `latest` and partial tags (`5.8`, `5`) resolve to the newest known release.
    """
    _, repository, tag, digest = split_image_reference(image)
    repository_name = repository.rsplit("/", 1)[-1]
    repository_known = repository_name in _EDITION_BY_REPOSITORY_NAME
    edition = _EDITION_BY_REPOSITORY_NAME.get(repository_name, OPENSOURCE)
    # A reference without tag means `latest`, unless a digest pins some unknown build.
    effective_tag = tag or ("" if digest else "latest")
    version, version_known = _resolve_tag(effective_tag, edition)
    if version >= UNIFIED_EDITION_SINCE:
        edition = ENTERPRISE
    return ImageInfo(
        image=image,
        repository=repository,
        tag=tag,
        digest=digest,
        edition=edition,
        version=version,
        version_known=version_known,
        repository_known=repository_known,
    )


def otp_release(edition: str, version: Version) -> str | None:
    return KNOWN_VERSIONS.get(edition, {}).get(version)


# Feature gates -------------------------------------------------------------------------------


def supports_config_put(version: Version) -> bool:
    """PUT /api/v5/configs (whole-config load) exists."""
    return version >= (5, 1, 1)


def supports_ignore_readonly(version: Version) -> bool:
    """PUT /api/v5/configs accepts ignore_readonly=true."""
    return version >= (5, 7, 0)


def uses_db_role_env(version: Version) -> bool:
    """`node.role` exists from 5.0.23 (Opensource) / e5.0.3 (Enterprise); `node.db_role` before, and
    as its alias after (emqx_conf_schema.erl). The pods set db_role before 5.0.26, which every
    release of that range reads."""
    return version < (5, 0, 26)


def role_env_name(version: Version) -> str:
    return "EMQX_NODE__DB_ROLE" if uses_db_role_env(version) else "EMQX_NODE__ROLE"


def schema_has_default_listeners(edition: str, version: Version) -> bool:
    """From 5.0.25 (Opensource) / e5.0.3 (Enterprise) EMQX's schema creates the tcp/ssl/ws/wss default
    listeners itself; before, they exist only in the shipped etc/emqx.conf (emqx_schema.erl)."""
    return version >= ((5, 0, 3) if edition == ENTERPRISE else (5, 0, 25))


def has_status_endpoint(version: Version) -> bool:
    """`GET /status` exists from 5.0.5; before, only `GET /api/v5/status` (emqx_mgmt_api_status.erl)."""
    return version >= (5, 0, 5)


def lists_stopped_cores(version: Version) -> bool:
    """GET /api/v5/nodes lists stopped cores from 5.0.18 (without `role` until 5.1.0)."""
    return version >= (5, 0, 18)


def evacuation_blocks_boot(version: Version) -> bool:
    """Before 5.7.0 a node whose data volume holds an evacuation (`<data_dir>/.evacuation`) does not
    start (fixed by EMQX PR 12871); later it resumes the evacuation at boot."""
    return version < (5, 7, 0)


def min_wait_takeover(edition: str, version: Version) -> int:
    """Evacuation's wait_takeover is a positive integer in Enterprise 5.0.4-5.1.0 (a duration that may
    be 0 from e5.1.1; emqx_node_rebalance_api.erl)."""
    return 1 if version < (5, 1, 1) else 0


def evacuation_has_health_check(version: Version) -> bool:
    """Evacuation start takes wait_health_check from e5.1.0 (emqx_node_rebalance_api.erl)."""
    return version >= (5, 1, 0)


# Configuration roots one edition has and the other lacks (emqx_enterprise_schema.erl EE_SCHEMA_MODULES,
# emqx_conf_schema.erl); from 5.9 every build is Enterprise.
ENTERPRISE_ONLY_ROOTS = frozenset({
    "license", "schema_registry", "schema_validation", "message_transformation", "file_transfer", "durable_queues",
})
OPENSOURCE_ONLY_ROOTS = frozenset({"telemetry"})


def unknown_roots(edition: str, roots: Iterable[str]) -> list[str]:
    """The configuration roots among `roots` that EMQX of `edition` has no schema for."""
    foreign = ENTERPRISE_ONLY_ROOTS if edition == OPENSOURCE else OPENSOURCE_ONLY_ROOTS
    return sorted(root for root in roots if root in foreign)


# license.key values that are built into EMQX (emqx_license_schema.erl): "default" is the community
# licence (a single node from 5.9), "evaluation" a trial that allows clustering.
COMMUNITY_LICENSE_KEY = "default"


def replicants_allowed(edition: str, version: Version) -> bool:
    """Opensource builds from 5.8.0 refuse to boot as replicant."""
    return not (edition == OPENSOURCE and version >= (5, 8, 0))


DEFAULT_REPLICANTS = 3


def default_replicants(image: str) -> int:
    """Replicants when the resource does not say: the seed's 3 where the image runs replicants, none
    where it cannot (Opensource from 5.8.0), so the official operator's `image: emqx/emqx:latest`
    sample runs as it is."""
    info = parse_image(image)
    return DEFAULT_REPLICANTS if replicants_allowed(info.edition, info.version) else 0


def needs_license_for_cluster(version: Version) -> bool:
    """From 5.9.0 the default license allows a single node only."""
    return version >= UNIFIED_EDITION_SINCE


def supports_evacuation(edition: str, version: Version) -> bool:
    """The load_rebalance (evacuation) API: Enterprise from 5.0.4, every build from 5.9.0."""
    return version >= UNIFIED_EDITION_SINCE or (edition == ENTERPRISE and version >= (5, 0, 4))


def supports_rebalance(edition: str, version: Version) -> bool:
    """Connection rebalance (POST /load_rebalance/{node}/start): the same emqx_node_rebalance app as
    evacuation, an Enterprise business app before 5.9 (apps/emqx_machine/priv/reboot_lists.eterm)."""
    return supports_evacuation(edition, version)


def rebalance_refusal(edition: str, version: Version) -> str | None:
    """Why this EMQX cannot rebalance (None when it can)."""
    if supports_rebalance(edition, version):
        return None
    return (f"EMQX {edition} {format_version(version)} has no connection rebalance: it comes with Enterprise "
            "from 5.0.4 and with every build from 5.9.0")


# The data backup HTTP API (emqx_mgmt_api_data_backup.erl): POST /data/export, /data/files, /data/import.
DATA_BACKUP_API_SINCE: Version = (5, 4, 0)
# POST /data/export takes a body (table_sets, root_keys) from 5.8.2; before, it has none.
DATA_EXPORT_BODY_SINCE: Version = (5, 8, 2)


def supports_data_backup_api(version: Version) -> bool:
    return version >= DATA_BACKUP_API_SINCE


def data_backup_refusal(edition: str, version: Version) -> str | None:
    if supports_data_backup_api(version):
        return None
    return (f"EMQX {edition} {format_version(version)} has no data backup API (POST /api/v5/data/export and "
            f"/data/import arrived in {format_version(DATA_BACKUP_API_SINCE)}; before, only `emqx ctl data "
            "export|import` inside a node, from 5.1.0)")


def api_key_backup_restricted(edition: str, version: Version) -> bool:
    """e5.8.11, e5.9.3, e5.10.4 (emqx_mgmt_api_data_backup.erl, fix 17169): a caller with an API key
    exports without API keys and dashboard users, and may not import an archive holding them."""
    if edition != ENTERPRISE and version < UNIFIED_EDITION_SINCE:
        return False
    return (5, 8, 11) <= version < (5, 9, 0) or (5, 9, 3) <= version < (5, 10, 0) or version >= (5, 10, 4)


def backup_importable(archive_edition: str, archive_version: str, edition: str, version: Version) -> str | None:
    """EMQX's import rules (emqx_mgmt_data_backup.erl check_edition/check_version): an Enterprise
    archive never goes into Opensource, and one from a newer major.minor never goes in (the patch
    is not compared). Returns the refusal, or None."""
    if archive_edition not in ("ce", "ee"):
        return f"the archive's META.hocon names edition {archive_edition!r}, neither ce nor ee"
    if archive_edition == "ee" and edition == OPENSOURCE and version < UNIFIED_EDITION_SINCE:
        return "the archive comes from EMQX Enterprise; EMQX does not import it into Opensource"
    parts = archive_version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return f"the archive's META.hocon has an unreadable version {archive_version!r}"
    if major > version[0] or (major == version[0] and minor > version[1]):
        return (f"the archive comes from EMQX {archive_version}, newer than the cluster's "
                f"{format_version(version)}; EMQX imports only archives of its own or an older minor release")
    return None


def replicant_needs_same_version_core(version: Version) -> bool:
    """From 5.6.0 a replicant only works when some core runs the same release: upgrade cores first."""
    return version >= (5, 6, 0)


def supports_bootstrap_api_keys(version: Version) -> bool:
    """`api_key.bootstrap_file` exists (the operator's own API key is provisioned through it)."""
    return version >= (5, 0, 14)


# Upgrade policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyViolation:
    rule: str
    message: str


def check_upgrade(
    from_image: str,
    to_image: str,
    *,
    allow_downgrade: bool = False,
    replicants: int = 0,
    cores: int = 1,
    license_configured: bool = False,
) -> list[PolicyViolation]:
    """Why moving a running cluster from `from_image` to `to_image` is refused (empty list: allowed).

    Patch changes are free; minors move one step at a time; majors never change; downgrades need
    `allow_downgrade`; the target must be able to run the requested topology and license.
    """
    source, target = parse_image(from_image), parse_image(to_image)
    violations: list[PolicyViolation] = []
    for info in (source, target):
        if not info.version_known:
            violations.append(
                PolicyViolation(
                    "unknown-version",
                    f"cannot tell the EMQX version of {info.image!r}; use a version tag "
                    "(e.g. emqx/emqx-enterprise:5.8.9, optionally with @sha256:...)",
                )
            )
    if violations:
        return violations

    old, new = source.version, target.version
    old_text, new_text = format_version(old), format_version(new)
    if old[0] != new[0]:
        violations.append(
            PolicyViolation(
                "major-change",
                f"{old_text} -> {new_text} changes the major version; EMQX cannot be rolled across majors "
                "(export the data and create a new cluster)",
            )
        )
    else:
        minor_steps = abs(new[1] - old[1])
        if minor_steps > 1:
            next_minor = f"{old[0]}.{old[1] + (1 if new > old else -1)}"
            violations.append(
                PolicyViolation(
                    "one-minor-step",
                    f"{old_text} -> {new_text} skips {minor_steps - 1} minor release(s); move one minor "
                    f"at a time (next: {next_minor}.x)",
                )
            )
    if new < old and not allow_downgrade:
        violations.append(
            PolicyViolation(
                "downgrade",
                f"{old_text} -> {new_text} is a downgrade; pass --allow-downgrade "
                "(spec.updateStrategy.allowDowngrade) if you really mean it",
            )
        )
    if replicants > 0 and not replicants_allowed(target.edition, new):
        violations.append(
            PolicyViolation(
                "no-opensource-replicants",
                f"EMQX Opensource {new_text} refuses the replicant role ({replicants} replicant(s) requested); "
                "scale replicants to 0 first or use emqx/emqx-enterprise",
            )
        )
    nodes = cores + replicants
    if nodes > 1 and needs_license_for_cluster(new) and not license_configured:
        if source.edition == OPENSOURCE and not needs_license_for_cluster(old):
            violations.append(
                PolicyViolation(
                    "opensource-to-licensed",
                    f"{old_text} Opensource -> {new_text}: from 5.9 EMQX runs a cluster only with a license; "
                    "set license.key in spec.config.data (or EMQX_LICENSE__KEY) before upgrading",
                )
            )
        else:
            violations.append(
                PolicyViolation(
                    "license-required",
                    f"EMQX {new_text} runs more than one node ({nodes}) only with a license; "
                    "set license.key in spec.config.data (or EMQX_LICENSE__KEY)",
                )
            )
    return violations


# Multi-step upgrades ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hop:
    """One image change of an upgrade path, and why it is there."""

    from_image: str
    image: str
    why: str


@dataclass(frozen=True)
class UpgradePath:
    hops: tuple[Hop, ...]
    # (hop index, violation): what refuses a hop; an empty tuple means every hop passes the policy
    violations: tuple[tuple[int, PolicyViolation], ...] = ()

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(hop.image for hop in self.hops)


def image_with_version(image: str, version: Version) -> str:
    """`image`'s registry and repository with `version` as the tag (a digest is dropped)."""
    registry, repository, _, _ = split_image_reference(image)
    return f"{registry + '/' if registry else ''}{repository}:{format_version(version)}"


def upgrade_path(
    from_image: str,
    to_image: str,
    *,
    allow_downgrade: bool = False,
    replicants: int = 0,
    cores: int = 1,
    license_configured: bool = False,
) -> UpgradePath:
    """The images an upgrade from `from_image` to `to_image` goes through, each checked with
    check_upgrade() from the one before.

    EMQX upgrades one minor release at a time, so a target more than one minor above runs through
    the newest known patch of every minor in between (5.6.1 -> 5.7.2 -> 5.8.9), in the target's
    registry and repository; anything else (a patch, one minor, a downgrade, a major change, an
    unknown version) is a single hop, judged as such."""
    source, target = parse_image(from_image), parse_image(to_image)
    stops: list[tuple[str, str]] = []
    missing: list[PolicyViolation] = []
    if (source.version_known and target.version_known and source.version[0] == target.version[0]
            and target.version[1] - source.version[1] > 1):
        major = source.version[0]
        for minor in range(source.version[1] + 1, target.version[1]):
            newest = newest_known(target.edition, major, minor)
            if newest is None:
                missing.append(PolicyViolation(
                    "no-known-release",
                    f"kubectl-emqx knows no {target.edition} {major}.{minor}.x release to step through"))
                continue
            stops.append((image_with_version(to_image, newest),
                          f"EMQX upgrades one minor release at a time; {format_version(newest)} is the newest "
                          f"{major}.{minor} release kubectl-emqx knows"))
    stops.append((to_image, "the target"))
    hops: list[Hop] = []
    violations: list[tuple[int, PolicyViolation]] = []
    previous = from_image
    for index, (image, why) in enumerate(stops):
        hops.append(Hop(previous, image, why))
        found = check_upgrade(previous, image, allow_downgrade=allow_downgrade, replicants=replicants, cores=cores,
                              license_configured=license_configured)
        violations.extend((index, violation) for violation in found)
        previous = image
    violations.extend((0, violation) for violation in missing)
    return UpgradePath(tuple(hops), tuple(violations))


def known_release_like(image: str) -> str | None:
    """A release kubectl-emqx knows that is closest to `image`'s tag (the newest patch of its
    minor, else of its major), in the same repository; None when that is `image`."""
    info = parse_image(image)
    major, minor = info.version[0], info.version[1]
    newest = newest_known(info.edition, major, minor) or newest_known(info.edition, major)
    if newest is None:
        return None
    candidate = image_with_version(image, newest)
    return None if candidate == image else candidate

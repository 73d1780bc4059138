"""EMQX releases the simulator knows, image parsing and per-version feature gates (emqx-api.md §7, §8.8)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Version = tuple[int, int, int]


class Edition(StrEnum):
    OPENSOURCE = "Opensource"
    ENTERPRISE = "Enterprise"


def _patch_range(major: int, minor: int, last_patch: int) -> list[Version]:
    return [(major, minor, patch) for patch in range(last_patch + 1)]


_COMMON_RELEASES: list[Version] = (
    _patch_range(5, 0, 26)
    + _patch_range(5, 1, 6)
    + _patch_range(5, 2, 1)
    + _patch_range(5, 3, 2)
    + _patch_range(5, 4, 1)
    + _patch_range(5, 5, 1)
    + _patch_range(5, 6, 1)
    + _patch_range(5, 7, 2)
    + _patch_range(5, 8, 9)
)

# From 5.9.0 there is a single (BSL) product, published only as emqx/emqx-enterprise.
KNOWN_RELEASES: dict[Edition, tuple[Version, ...]] = {
    Edition.OPENSOURCE: tuple(_COMMON_RELEASES),
    Edition.ENTERPRISE: tuple(_COMMON_RELEASES + _patch_range(5, 9, 1) + _patch_range(5, 10, 4)),
}

# "<otp vsn>/<erts vsn>" as the official images of each minor report it.
_OTP_BY_MINOR: dict[tuple[int, int], str] = {
    (5, 0): "24.3.4.2-1/12.3.2.2",
    (5, 1): "25.3.2-1/13.2.2.1",
    (5, 2): "25.3.2-2/13.2.2.2",
    (5, 3): "25.3.2-2/13.2.2.2",
    (5, 4): "25.3.2-2/13.2.2.2",
    (5, 5): "26.2.1-2/14.2.1",
    (5, 6): "26.2.1-2/14.2.1",
    (5, 7): "26.2.5-1/14.2.5",
    (5, 8): "26.2.5-3/14.2.5",
    (5, 9): "26.2.5-12/14.2.5.8",
    (5, 10): "26.2.5-14/14.2.5.9",
}


def otp_release(version: Version) -> str:
    return _OTP_BY_MINOR[version[:2]]


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def parse_version(text: str) -> Version:
    parts = text.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a release version: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def rel_vsn(edition: Edition, version: Version) -> str:
    """`/status?format=json` rel_vsn: `v` prefix for Community builds, `e` for Enterprise and all 5.9+."""
    prefix = "e" if edition is Edition.ENTERPRISE else "v"
    return prefix + format_version(version)


class ImageError(Exception):
    """The image cannot be pulled or is not an EMQX image (the pod would sit in ErrImagePull)."""


@dataclass(frozen=True)
class EmqxImage:
    image: str
    edition: Edition
    version: Version

    @property
    def version_text(self) -> str:
        return format_version(self.version)

    @property
    def reported_edition(self) -> Edition:
        # All 5.9+ builds report "Enterprise" whatever the repository.
        return Edition.ENTERPRISE if self.version >= (5, 9, 0) else self.edition


def _split_image(image: str) -> tuple[str, str]:
    reference = image.split("@", 1)[0]
    last_slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > last_slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def parse_image(image: str) -> EmqxImage:
    """`[registry/]emqx/emqx[-enterprise]:TAG` -> edition and version.

    `latest` (or no tag) resolves to the newest known release of the edition, `5.8` to the newest 5.8.x.
    A tag the simulator does not know is treated like a tag missing from the registry.
    """
    repository, tag = _split_image(image)
    repo_name = repository.rsplit("/", 1)[-1]
    if repo_name == "emqx":
        edition = Edition.OPENSOURCE
    elif repo_name == "emqx-enterprise":
        edition = Edition.ENTERPRISE
    else:
        raise ImageError(f"image {image!r} is not an EMQX image (emqx/emqx or emqx/emqx-enterprise)")
    if tag.endswith("-elixir"):
        tag = tag[: -len("-elixir")]
    known = KNOWN_RELEASES[edition]
    if tag == "latest":
        return EmqxImage(image, edition, known[-1])
    parts = tag.split(".")
    if not all(part.isdigit() for part in parts) or len(parts) not in (2, 3):
        raise ImageError(f'failed to pull image "{image}": manifest for {repository}:{tag} not found')
    numbers = tuple(int(part) for part in parts)
    matching = [version for version in known if version[: len(numbers)] == numbers]
    if not matching:
        raise ImageError(f'failed to pull image "{image}": manifest for {repository}:{tag} not found')
    return EmqxImage(image, edition, matching[-1])


# Feature gates (emqx-api.md §8.8); each is the first release that has the feature.
EDITION_FIELD_SINCE: Version = (5, 0, 12)
LIVE_CONNECTIONS_SINCE: Version = (5, 1, 0)
CLUSTER_SESSIONS_SINCE: Version = (5, 6, 0)
STATUS_ROUTE_SINCE: Version = (5, 0, 5)
STATUS_JSON_SINCE: Version = (5, 0, 25)
NODE_ROLE_FIELD_SINCE: Version = (5, 0, 26)
BOOTSTRAP_FILE_SINCE: Version = (5, 0, 14)
BOOTSTRAP_ROLE_SINCE: Version = (5, 4, 0)
CONFIG_PUT_SINCE: Version = (5, 1, 1)
CONFIG_HOCON_GET_SINCE: Version = (5, 1, 1)
IGNORE_READONLY_SINCE: Version = (5, 7, 0)
CONFIG_ERRORS_JSON_SINCE: Version = (5, 7, 0)
CONFIG_ERRORS_TEXT_SINCE: Version = (5, 2, 0)
TOPOLOGY_SINCE: Version = (5, 2, 0)
INVITE_ASYNC_SINCE: Version = (5, 5, 0)
REPLICANT_SAME_VERSION_CORE_SINCE: Version = (5, 6, 0)
CE_REPLICANT_REJECTED_SINCE: Version = (5, 8, 0)
SINGLE_NODE_LICENSE_SINCE: Version = (5, 9, 0)
EVACUATION_EE_SINCE: Version = (5, 0, 4)
WAIT_HEALTH_CHECK_SINCE: Version = (5, 1, 0)
EVACUATION_RESUME_SINCE: Version = (5, 7, 0)
BASE_HOCON_SINCE: Version = (5, 8, 4)


def has_rebalance_api(edition: Edition, version: Version) -> bool:
    if version >= SINGLE_NODE_LICENSE_SINCE:
        return True
    return edition is Edition.ENTERPRISE and version >= EVACUATION_EE_SINCE


def has_rbac(edition: Edition, version: Version) -> bool:
    return edition is Edition.ENTERPRISE or version >= SINGLE_NODE_LICENSE_SINCE


def can_cluster_together(a: Version, b: Version) -> bool:
    """Backplane-API policy: only the same or adjacent minor releases of one major interoperate."""
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1

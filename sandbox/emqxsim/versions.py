"""EMQX releases the simulator knows, image parsing and per-release behaviour switches.

Every table here is the simulator's own, read from EMQX's source (docs/fidelity.md names the file and
tag of each), independent of the product's tables in kubectl_emqx on purpose: an oracle must not share
the product's mistakes.

Community (`emqx/emqx`) and Enterprise (`emqx/emqx-enterprise`) numbered 5.0.x differently (e5.0.3
carries what v5.0.23-v5.0.25 brought), so a feature switch (`Gate`) names the first release of each
edition. From 5.1 both lines share numbers, and from 5.9.0 there is a single product.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

Version = tuple[int, int, int]


class Edition(StrEnum):
    OPENSOURCE = "Opensource"
    ENTERPRISE = "Enterprise"


def _patch_range(major: int, minor: int, last_patch: int, first_patch: int = 0) -> list[Version]:
    return [(major, minor, patch) for patch in range(first_patch, last_patch + 1)]


# Tags v5.x.y of emqx/emqx (5.8.9 is the last Community release).
_CE_RELEASES: list[Version] = (
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
# Tags e5.x.y. The mirror lacks e5.7.x and e5.8.0-e5.8.7 (images exist); they are assumed to behave
# like the Community release of the same number, as all other e5.x >= 5.1 do.
_EE_RELEASES: list[Version] = (
    _patch_range(5, 0, 4)
    + _patch_range(5, 1, 1)
    + _patch_range(5, 2, 1)
    + _patch_range(5, 3, 2)
    + _patch_range(5, 4, 1)
    + _patch_range(5, 5, 1)
    + _patch_range(5, 6, 1)
    + _patch_range(5, 7, 2)
    + _patch_range(5, 8, 11)
    + _patch_range(5, 9, 3)
    + _patch_range(5, 10, 4)
)

KNOWN_RELEASES: dict[Edition, tuple[Version, ...]] = {
    Edition.OPENSOURCE: tuple(_CE_RELEASES),
    Edition.ENTERPRISE: tuple(_EE_RELEASES),
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


# vsn of the `emqx` OTP application (apps/emqx/src/emqx.app.src) per tag. Replicants of 5.6+ only
# replicate from a core whose value is equal (emqx_machine:mria_lb_custom_info_check/1), which is why
# e.g. 5.8.8, e5.8.8, e5.9.1 and e5.10.0 (all "5.5.4") can serve each other.
_CE_APP_VSN: dict[Version, str] = {
    **{(5, 0, p): f"5.0.{p}" for p in range(0, 19)},
    (5, 0, 19): "5.0.18",
    (5, 0, 20): "5.0.19",
    (5, 0, 21): "5.0.20",
    (5, 0, 22): "5.0.22",
    (5, 0, 23): "5.0.23",
    (5, 0, 24): "5.0.24",
    (5, 0, 25): "5.0.25",
    (5, 0, 26): "5.0.27",
    **{(5, 1, p): f"5.1.{p}" for p in range(0, 6)},
    (5, 1, 6): "5.1.8",
    (5, 2, 0): "5.1.9",
    (5, 2, 1): "5.1.11",
    (5, 3, 0): "5.1.12",
    (5, 3, 1): "5.1.13",
    (5, 3, 2): "5.1.14",
    (5, 4, 0): "5.1.15",
    (5, 4, 1): "5.1.18",
    (5, 5, 0): "5.1.19",
    (5, 5, 1): "5.1.20",
    (5, 6, 0): "5.2.0",
    (5, 6, 1): "5.2.1",
    (5, 7, 0): "5.3.0",
    (5, 7, 1): "5.3.2",
    (5, 7, 2): "5.3.3",
    (5, 8, 0): "5.4.0",
    (5, 8, 1): "5.4.1",
    (5, 8, 2): "5.4.2",
    (5, 8, 3): "5.4.3",
    (5, 8, 4): "5.5.0",
    (5, 8, 5): "5.5.1",
    (5, 8, 6): "5.5.2",
    (5, 8, 7): "5.5.3",
    (5, 8, 8): "5.5.4",
    (5, 8, 9): "5.5.5",
}
_EE_APP_VSN: dict[Version, str] = {
    (5, 0, 0): "5.0.16",
    (5, 0, 1): "5.0.19",
    (5, 0, 2): "5.0.21",
    (5, 0, 3): "5.0.23",
    (5, 0, 4): "5.0.26",
    (5, 1, 0): "5.1.0",
    (5, 1, 1): "5.1.2",
    (5, 2, 0): "5.1.8",
    (5, 2, 1): "5.1.11",
    (5, 3, 0): "5.1.12",
    (5, 3, 1): "5.1.13",
    (5, 3, 2): "5.1.14",
    (5, 4, 0): "5.1.17",
    (5, 4, 1): "5.1.18",
    (5, 5, 0): "5.1.19",
    (5, 5, 1): "5.1.20",
    (5, 6, 0): "5.2.0",
    (5, 6, 1): "5.2.1",
    (5, 8, 8): "5.5.4",
    (5, 8, 9): "5.5.5",
    (5, 8, 10): "5.5.6",
    (5, 8, 11): "5.5.7",
    (5, 9, 0): "5.5.3",
    (5, 9, 1): "5.5.4",
    (5, 9, 2): "5.5.5",
    (5, 9, 3): "5.5.6",
    (5, 10, 0): "5.5.4",
    (5, 10, 1): "5.5.5",
    (5, 10, 2): "5.5.6",
    (5, 10, 3): "5.5.7",
    (5, 10, 4): "5.5.8",
}

# emqx/hocon tag each release was built with (rebar.config); it decides HOCON parsing details and the
# shape of error terms (see hocon.Dialect).
_HOCON_BY_CE: list[tuple[Version, str]] = [
    ((5, 0, 0), "0.28.2"),
    ((5, 0, 3), "0.28.3"),
    ((5, 0, 4), "0.29.0"),
    ((5, 0, 5), "0.30.0"),
    ((5, 0, 12), "0.32.0"),
    ((5, 0, 13), "0.33.0"),
    ((5, 0, 14), "0.35.0"),
    ((5, 0, 16), "0.35.3"),
    ((5, 0, 19), "0.36.0"),
    ((5, 0, 21), "0.37.2"),
    ((5, 0, 22), "0.38.0"),
    ((5, 0, 23), "0.39.2"),
    ((5, 0, 24), "0.39.3"),
    ((5, 0, 25), "0.39.4"),
    ((5, 0, 26), "0.39.7"),
    ((5, 1, 0), "0.39.8"),
    ((5, 1, 1), "0.39.11"),
    ((5, 1, 2), "0.39.14"),
    ((5, 1, 6), "0.39.16"),
    ((5, 3, 1), "0.39.19"),
    ((5, 3, 2), "0.40.0"),
    ((5, 4, 0), "0.40.3"),
    ((5, 5, 0), "0.40.4"),
    ((5, 6, 0), "0.42.1"),
    ((5, 7, 0), "0.42.2"),
    ((5, 7, 2), "0.43.1"),
    ((5, 8, 0), "0.43.3"),
    ((5, 8, 1), "0.43.4"),
    ((5, 8, 9), "0.44.0"),
]
_HOCON_BY_EE: list[tuple[Version, str]] = [
    ((5, 0, 0), "0.35.3"),
    ((5, 0, 1), "0.36.0"),
    ((5, 0, 2), "0.37.2"),
    ((5, 0, 3), "0.38.2"),
    ((5, 0, 4), "0.39.4"),
    ((5, 1, 0), "0.39.8"),
    ((5, 1, 1), "0.39.14"),
    ((5, 2, 0), "0.39.16"),
    ((5, 3, 1), "0.39.19"),
    ((5, 3, 2), "0.40.0"),
    ((5, 4, 0), "0.40.3"),
    ((5, 5, 0), "0.40.4"),
    ((5, 6, 0), "0.42.1"),
    ((5, 7, 0), "0.42.2"),
    ((5, 7, 2), "0.43.1"),
    ((5, 8, 0), "0.43.3"),
    ((5, 8, 1), "0.43.4"),
    ((5, 8, 9), "0.44.0"),
    ((5, 9, 0), "0.45.3"),
]


def _lookup(table: list[tuple[Version, str]], version: Version) -> str:
    value = table[0][1]
    for since, item in table:
        if version >= since:
            value = item
    return value


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

    @property
    def enterprise(self) -> bool:
        return self.reported_edition is Edition.ENTERPRISE

    @property
    def emqx_app_vsn(self) -> str:
        table = _EE_APP_VSN if self.edition is Edition.ENTERPRISE else _CE_APP_VSN
        # e5.7.x and e5.8.0-e5.8.7 are not in the mirror: assumed equal to the Community release.
        return table.get(self.version) or _CE_APP_VSN.get(self.version) or format_version(self.version)

    @property
    def hocon_version(self) -> tuple[int, int, int]:
        table = _HOCON_BY_EE if self.edition is Edition.ENTERPRISE else _HOCON_BY_CE
        return parse_version(_lookup(table, self.version))

    @property
    def schema_module(self) -> str:
        """SCHEMA_MOD of bin/emqx (rebar.config.erl emqx_schema_mod)."""
        if not self.enterprise:
            return "emqx_conf_schema"
        return "emqx_ee_conf_schema" if self.version < (5, 1, 0) else "emqx_enterprise_schema"

    def at_least(self, gate: Gate) -> bool:
        return gate.open(self)


@dataclass(frozen=True)
class Gate:
    """The first Community and Enterprise release with a behaviour (None: never in that edition)."""

    ce: Version | None
    ee: Version | None = None

    def open(self, image: EmqxImage) -> bool:
        if image.version >= (5, 9, 0) or image.edition is Edition.ENTERPRISE:
            since = self.ee if self.ee is not None else self.ce
        else:
            since = self.ce
        return since is not None and image.version >= since


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


# ---------------------------------------------------------------------------------------------- gates
# Each names the first release (Community, Enterprise) that has the behaviour; docs/fidelity.md has
# the EMQX file@tag of each.
_ALL: Version = (5, 0, 0)

EDITION_FIELD = Gate((5, 0, 12), _ALL)
STATUS_ROUTE = Gate((5, 0, 5), _ALL)  # plain Cowboy /status
STATUS_API_V5_BACK = Gate((5, 0, 10), _ALL)  # /api/v5/status again (absent 5.0.5-5.0.9)
STATUS_503 = Gate((5, 0, 10), _ALL)  # 503 + retry-after when the emqx app is down
STATUS_JSON = Gate((5, 0, 25), (5, 0, 4))
STOPPED_CORES_LISTED = Gate((5, 0, 18), (5, 0, 1))
STOPPED_CORE_ROLE = Gate((5, 1, 0))
LIVE_CONNECTIONS = Gate((5, 1, 0))
CLUSTER_SESSIONS = Gate((5, 6, 0))
TOPOLOGY = Gate((5, 1, 2), (5, 1, 1))
INVITE_ASYNC = Gate((5, 5, 0))
REALM_EMQX_DASHBOARD = Gate((5, 0, 26), (5, 0, 4))  # WWW-Authenticate realm (minirest-server before)
DASHBOARD_USER_BASIC_AUTH_REMOVED = Gate((5, 0, 15), _ALL)
NODE_ROLE_FIELD = Gate((5, 0, 23), (5, 0, 3))  # node.role (alias db_role); only node.db_role before
SCHEMA_DEFAULT_LISTENERS = Gate((5, 0, 25), (5, 0, 3))  # ensure_default_listener + default authz file source
LISTENER_MAX_CONN_5M = Gate((5, 0, 25), (5, 0, 3))  # default max_connections 5000000 ...
LISTENER_MAX_CONN_INFINITY_AGAIN = Gate((5, 1, 0))  # ... until 5.1.0 ("infinity")
LISTENER_ENABLE_ALIAS = Gate((5, 1, 0))  # `enable` accepted (alias of `enabled`; field renamed 5.1.1)
LISTENER_FIELD_ENABLE = Gate((5, 1, 1))
DASHBOARD_BIND_ZERO_DISABLES = Gate((5, 1, 0))  # bind default 0 disables; `enable` deprecated (ignored)
CLUSTER_HOCON = Gate((5, 0, 23), (5, 0, 3))  # cluster.hocon below emqx.conf/env (cluster-override.conf before)
GENERATE_READS_CLUSTER_HOCON = Gate((5, 6, 0))
BASE_HOCON = Gate((5, 8, 4))
BOOTSTRAP_FILE = Gate((5, 0, 14), _ALL)
BOOTSTRAP_ROLE = Gate((5, 4, 0))
BOOTSTRAP_BLANK_LINES_SKIPPED = Gate((5, 6, 0))
BOOTSTRAP_ERRORS_NONFATAL = Gate((5, 7, 2))
BOOTSTRAP_CORE_ONLY = Gate((5, 8, 3))
UNKNOWN_ROOT_WARNING = Gate((5, 1, 0))  # config_key_not_recognized for unknown roots of the conf files
CONFIG_PUT = Gate((5, 1, 1))
CONFIG_HOCON_GET = Gate((5, 1, 1))
IGNORE_READONLY = Gate((5, 7, 0))
READONLY_CLUSTER_SUBKEYS = Gate((5, 8, 0))  # cluster.* except cluster.links (whole `cluster` root before)
REPLICANT_SAME_APP_VSN = Gate((5, 6, 0))
DNS_NODE_NAME_CHECK = Gate((5, 6, 0))  # check_node_name_and_discovery_strategy (name@IP for dns a/aaaa)
REPLICANT_HEALTH_PROBE = Gate((5, 8, 2))  # warns no_available_core_node_at_same_version every 30 s
CE_REPLICANT_REJECTED = Gate((5, 8, 0), None)
CE_REPLICANT_EXPLICIT_MESSAGE = Gate((5, 8, 1), None)
SINGLE_NODE_LICENSE = Gate((5, 9, 0), (5, 9, 0))
LICENSE_ROOT = Gate((5, 9, 0), _ALL)
EVACUATION_API = Gate((5, 9, 0), (5, 0, 4))
WAIT_HEALTH_CHECK = Gate((5, 9, 0), (5, 1, 0))
WAIT_TAKEOVER_DURATION = Gate((5, 9, 0), (5, 1, 1))  # timeout_duration_s (0 and "10s" allowed); pos_integer before
REBALANCE_MESSAGES_FLAT = Gate((5, 9, 0), (5, 1, 0))  # binfmt; io_lib deep lists rendered with ~0p before
REBALANCE_RPC_TIMEOUTS = Gate((5, 9, 0), (5, 9, 0))  # conn/sess_evict_rpc_timeout in the start body and status
EVACUATION_RESUME = Gate((5, 7, 0))  # #12871: a node with data/.evacuation starts (and resumes)
MAX_PACKET_VALIDATOR = Gate((5, 1, 6), (5, 2, 0))  # validate_packet_size (256M)
MAX_PACKET_VALIDATOR_V2 = Gate((5, 8, 5))  # validate_max_packet_size (268435455)
RBAC = Gate((5, 9, 0), _ALL)


def has_rebalance_api(image: EmqxImage) -> bool:
    return EVACUATION_API.open(image)


def has_rbac(image: EmqxImage) -> bool:
    return RBAC.open(image)


def status_routes(image: EmqxImage) -> tuple[bool, bool]:
    """(plain /status, /api/v5/status) present on this release."""
    plain = STATUS_ROUTE.open(image)
    api = not plain or STATUS_API_V5_BACK.open(image)
    return plain, api

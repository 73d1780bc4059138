"""The EMQX custom resource as one normalised model, EmqxSpec (pure; validation.py checks it).

Accepts `apps.emqx.io/v2beta1` bodies and the v2alpha1 forms (`spec.emqxTemplate.image`,
`spec.bootstrapConfig`, the misspelled `toleRations`). Defaults match the CRD: 3 cores, config
mode Merge, clusterDomain cluster.local; replicants default to 3 where the image runs them, else 0
(the CRD leaves that one field to the operator: its default depends on the image).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx.domain import hocon, versions
from kubectl_emqx.domain.versions import ImageInfo, default_replicants, parse_image
from kubectl_emqx.domain.vocabulary import API_VERSION

DEFAULT_CORES = 3
DEFAULT_REPLICANTS = versions.DEFAULT_REPLICANTS  # where the image runs replicants; else 0
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_NAMESPACE = "default"
DEFAULT_REVISION_HISTORY_LIMIT = 3
CONFIG_MODES = ("Merge", "Replace")
UPDATE_STRATEGY_TYPES = ("RollingUpdate", "Recreate")

LICENSE_ENV = "EMQX_LICENSE__KEY"
ERLANG_DIST_PORT = 4370
GEN_RPC_PORT = 5369

FieldPath = tuple[str, ...]


@dataclass(frozen=True)
class NodeTemplate:
    """coreTemplate / replicantTemplate: replicas, pod metadata and the pod settings passed through.

    Kubernetes-typed values (affinity, env, probes, ...) are kept as plain data; treat them as
    read-only (builders copy them).
    """

    replicas: int
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] | None = None
    node_name: str | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    topology_spread_constraints: list[dict[str, Any]] = field(default_factory=list)
    command: list[str] | None = None
    args: list[str] | None = None
    ports: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, Any] | None = None
    pod_security_context: dict[str, Any] | None = None
    container_security_context: dict[str, Any] | None = None
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    extra_containers: list[dict[str, Any]] = field(default_factory=list)
    extra_volumes: list[dict[str, Any]] = field(default_factory=list)
    extra_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    liveness_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    startup_probe: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    min_available: int | str | None = None
    max_unavailable: int | str | None = None
    volume_claim_template: dict[str, Any] | None = None  # a PersistentVolumeClaimSpec (cores only)


@dataclass(frozen=True)
class ServiceTemplate:
    enabled: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)  # a ServiceSpec, merged under ours


@dataclass(frozen=True)
class EvacuationStrategy:
    wait_takeover_seconds: int = 10
    conn_evict_rate: int = 1000
    sess_evict_rate: int = 1000
    wait_health_check_seconds: int = 60


@dataclass(frozen=True)
class UpdateStrategy:
    type: str = "RollingUpdate"
    initial_delay_seconds: int = 0
    node_ready_timeout_seconds: int = 600
    evacuation: EvacuationStrategy = field(default_factory=EvacuationStrategy)
    allow_downgrade: bool = False
    max_surge: int = 1  # replicants added (and drained) at once during a rollout


RESTART_ROLES = ("all", "cores", "replicants")


@dataclass(frozen=True)
class RestartRequest:
    """spec.restart: restart nodes one at a time, as `kubectl rollout restart` does for a Deployment.

    `at` is the request (an RFC 3339 time; a new value is a new restart); `role` selects the cores,
    the replicants or both; `nodes` (pod names), when given, restarts only those pods."""

    at: str
    role: str = "all"
    nodes: tuple[str, ...] = ()

    def covers(self, role: str) -> bool:
        return self.role == "all" or self.role == ("cores" if role == "core" else "replicants")


# spec.rebalance.strategy field -> the key of EMQX's POST /load_rebalance/{node}/start body
# (emqx_node_rebalance_api.erl fields(rebalance_start)); the names are the official operator's
# Rebalance.spec.rebalanceStrategy ones.
REBALANCE_FIELDS: dict[str, str] = {
    "connEvictRate": "conn_evict_rate",
    "sessEvictRate": "sess_evict_rate",
    "waitTakeover": "wait_takeover",
    "waitHealthCheck": "wait_health_check",
    "absConnThreshold": "abs_conn_threshold",
    "relConnThreshold": "rel_conn_threshold",
    "absSessThreshold": "abs_sess_threshold",
    "relSessThreshold": "rel_sess_threshold",
}
REBALANCE_RELATIVE = ("relConnThreshold", "relSessThreshold")


@dataclass(frozen=True)
class RebalanceRequest:
    """spec.rebalance: one connection rebalance across the nodes that serve clients (EMQX's
    /load_rebalance/{coordinator}/start). `at` is the request (a new value is a new rebalance);
    `stop` ends the running one; `strategy` holds only what the user set (EMQX's defaults apply
    to the rest), as given (relative thresholds are strings, as in the official operator)."""

    at: str
    stop: bool = False
    strategy: tuple[tuple[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        """The start body: the strategy in EMQX's keys (relative thresholds as numbers)."""
        body: dict[str, Any] = {}
        for key, value in self.strategy:
            if key in REBALANCE_RELATIVE:
                try:
                    body[REBALANCE_FIELDS[key]] = float(value)
                except (TypeError, ValueError):
                    continue
            elif key in REBALANCE_FIELDS:
                body[REBALANCE_FIELDS[key]] = value
        return body


@dataclass(frozen=True)
class SecretKeyRef:
    secret_name: str
    secret_key: str


@dataclass(frozen=True)
class BootstrapApiKey:
    """A user API key: literal `key`/`secret`, or references the operator resolves."""

    key: str | None = None
    secret: str | None = None
    key_ref: SecretKeyRef | None = None
    secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True)
class ConfigProblem:
    message: str
    line: int  # 0: not parsed at all (too large)
    column: int


# The largest configuration accepted (bytes of HOCON text; the CRD says the same as maxLength). EMQX
# configurations are a few KiB; pyhocon needs seconds per 100 KiB, so a bigger text would hold an
# operator worker (and the plugin) for minutes: it is refused unparsed.
MAX_CONFIG_BYTES = 128 * 1024


@dataclass(frozen=True)
class EmqxSpec:
    name: str
    namespace: str
    api_version: str
    image: str
    image_info: ImageInfo
    image_field: FieldPath
    image_pull_policy: str | None
    image_pull_secrets: list[dict[str, Any]]
    service_account_name: str | None
    bootstrap_api_keys: tuple[BootstrapApiKey, ...]
    config_mode: str
    config_text: str
    config_field: FieldPath
    config: dict[str, Any]  # parsed config_text; {} when it does not parse (see config_problem)
    config_problem: ConfigProblem | None
    cluster_domain: str
    revision_history_limit: int
    update_strategy: UpdateStrategy
    restart: RestartRequest | None
    rebalance: RebalanceRequest | None
    core: NodeTemplate
    replicant: NodeTemplate
    dashboard_service: ServiceTemplate
    listeners_service: ServiceTemplate
    labels: dict[str, str]  # the CR's own labels

    @property
    def edition(self) -> str:
        return self.image_info.edition

    @property
    def version(self) -> tuple[int, int, int]:
        return self.image_info.version

    @property
    def total_nodes(self) -> int:
        return self.core.replicas + self.replicant.replicas


# Field paths ---------------------------------------------------------------------------------


def image_field_path(body: Mapping[str, Any]) -> FieldPath:
    """Where this body names its image: spec.image, or spec.emqxTemplate.image (v2alpha1 form)."""
    spec = _mapping(body.get("spec"))
    if "image" not in spec and _mapping(spec.get("emqxTemplate")).get("image") is not None:
        return ("spec", "emqxTemplate", "image")
    return ("spec", "image")


def config_field_path(body: Mapping[str, Any]) -> FieldPath:
    """Where this body keeps its HOCON: spec.config.data, or spec.bootstrapConfig (v2alpha1)."""
    spec = _mapping(body.get("spec"))
    if spec.get("bootstrapConfig") is not None and _mapping(spec.get("config")).get("data") is None:
        return ("spec", "bootstrapConfig")
    return ("spec", "config", "data")


def dotted(path: FieldPath) -> str:
    return ".".join(path)


def merge_patch(path: FieldPath, value: Any) -> dict[str, Any]:
    """A JSON merge patch setting `path` to `value`: ("spec", "image") -> {"spec": {"image": value}}."""
    patch: Any = value
    for key in reversed(path):
        patch = {key: patch}
    return dict(patch)


def get_field(body: Mapping[str, Any], path: FieldPath) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


# Normalisation -------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return copy.deepcopy(list(value)) if isinstance(value, list) else []


def _optional_copy(value: Any) -> Any:
    return copy.deepcopy(value) if value is not None else None


def _string_map(value: Any) -> dict[str, str]:
    return {str(key): str(item) for key, item in _mapping(value).items()}


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _node_template(template: Any, default_replicas: int, *, core: bool) -> NodeTemplate:
    template = _mapping(template)
    metadata = _mapping(template.get("metadata"))
    spec = _mapping(template.get("spec"))
    return NodeTemplate(
        replicas=_int(spec.get("replicas"), default_replicas),
        labels=_string_map(metadata.get("labels")),
        annotations=_string_map(metadata.get("annotations")),
        node_selector=_optional_copy(spec.get("nodeSelector")),
        node_name=spec.get("nodeName"),
        affinity=_optional_copy(spec.get("affinity")),
        # v2alpha1/v2beta1 carry the misspelled `toleRations` too; upstream appends both.
        tolerations=_list(spec.get("toleRations")) + _list(spec.get("tolerations")),
        topology_spread_constraints=_list(spec.get("topologySpreadConstraints")),
        command=_optional_copy(spec.get("command")),
        args=_optional_copy(spec.get("args")),
        ports=_list(spec.get("ports")),
        env=_list(spec.get("env")),
        env_from=_list(spec.get("envFrom")),
        resources=_optional_copy(spec.get("resources")),
        pod_security_context=_optional_copy(spec.get("podSecurityContext")),
        container_security_context=_optional_copy(spec.get("containerSecurityContext")),
        init_containers=_list(spec.get("initContainers")),
        extra_containers=_list(spec.get("extraContainers")),
        extra_volumes=_list(spec.get("extraVolumes")),
        extra_volume_mounts=_list(spec.get("extraVolumeMounts")),
        liveness_probe=_optional_copy(spec.get("livenessProbe")),
        readiness_probe=_optional_copy(spec.get("readinessProbe")),
        startup_probe=_optional_copy(spec.get("startupProbe")),
        lifecycle=_optional_copy(spec.get("lifecycle")),
        min_available=spec.get("minAvailable"),
        max_unavailable=spec.get("maxUnavailable"),
        volume_claim_template=_optional_copy(spec.get("volumeClaimTemplates")) if core else None,
    )


def _service_template(template: Any) -> ServiceTemplate:
    template = _mapping(template)
    metadata = _mapping(template.get("metadata"))
    return ServiceTemplate(
        enabled=template.get("enabled", True) is not False,
        labels=_string_map(metadata.get("labels")),
        annotations=_string_map(metadata.get("annotations")),
        spec=copy.deepcopy(dict(_mapping(template.get("spec")))),
    )


def _update_strategy(strategy: Any) -> UpdateStrategy:
    strategy = _mapping(strategy)
    evacuation = _mapping(strategy.get("evacuationStrategy"))
    defaults, evacuation_defaults = UpdateStrategy(), EvacuationStrategy()
    return UpdateStrategy(
        type=str(strategy.get("type") or defaults.type),
        initial_delay_seconds=_int(strategy.get("initialDelaySeconds"), defaults.initial_delay_seconds),
        node_ready_timeout_seconds=_int(strategy.get("nodeReadyTimeoutSeconds"), defaults.node_ready_timeout_seconds),
        evacuation=EvacuationStrategy(
            wait_takeover_seconds=_int(evacuation.get("waitTakeover"), evacuation_defaults.wait_takeover_seconds),
            conn_evict_rate=_int(evacuation.get("connEvictRate"), evacuation_defaults.conn_evict_rate),
            sess_evict_rate=_int(evacuation.get("sessEvictRate"), evacuation_defaults.sess_evict_rate),
            wait_health_check_seconds=_int(
                evacuation.get("waitHealthCheck"), evacuation_defaults.wait_health_check_seconds
            ),
        ),
        allow_downgrade=strategy.get("allowDowngrade") is True,
        max_surge=_int(strategy.get("maxSurge"), defaults.max_surge),
    )


def _restart(value: Any) -> RestartRequest | None:
    value = _mapping(value)
    if not value.get("at"):
        return None
    nodes = tuple(str(n) for n in value.get("nodes") or [] if n)
    return RestartRequest(str(value["at"]), str(value.get("role") or "all"), nodes)


def _rebalance(value: Any) -> RebalanceRequest | None:
    value = _mapping(value)
    if not value.get("at"):
        return None
    strategy = _mapping(value.get("strategy"))
    kept = tuple((key, strategy[key]) for key in REBALANCE_FIELDS if strategy.get(key) is not None)
    return RebalanceRequest(str(value["at"]), value.get("stop") is True, kept)


def _secret_key_ref(value: Any) -> SecretKeyRef | None:
    value = _mapping(value)
    if not value:
        return None
    return SecretKeyRef(str(value.get("secretName", "")), str(value.get("secretKey", "")))


def _bootstrap_api_keys(keys: Any) -> tuple[BootstrapApiKey, ...]:
    result = []
    for item in keys if isinstance(keys, list) else []:
        item = _mapping(item)
        secret_ref = _mapping(item.get("secretRef"))
        result.append(
            BootstrapApiKey(
                key=item.get("key"),
                secret=item.get("secret"),
                key_ref=_secret_key_ref(secret_ref.get("key")),
                secret_ref=_secret_key_ref(secret_ref.get("secret")),
            )
        )
    return tuple(result)


def normalize(body: Mapping[str, Any], namespace: str | None = None) -> EmqxSpec:
    """A CR body (v2beta1 or v2alpha1 form, defaulted by the apiserver or not) -> EmqxSpec.

    Never raises for content problems: those are reported by validate().
    """
    metadata = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    image_field, config_field = image_field_path(body), config_field_path(body)
    image = str(get_field(body, image_field) or "")
    config_text = str(get_field(body, config_field) or "")
    config: dict[str, Any] = {}
    problem = None
    size = len(config_text.encode())
    if size > MAX_CONFIG_BYTES:
        problem = ConfigProblem(f"the configuration has {size} bytes, at most {MAX_CONFIG_BYTES} are read", 0, 0)
    else:
        try:
            config = hocon.parse(config_text)
        except hocon.HoconError as error:
            problem = ConfigProblem(error.message, error.line, error.column)
    return EmqxSpec(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or namespace or DEFAULT_NAMESPACE),
        api_version=str(body.get("apiVersion") or API_VERSION),
        image=image,
        image_info=parse_image(image),
        image_field=image_field,
        image_pull_policy=spec.get("imagePullPolicy") or _mapping(spec.get("emqxTemplate")).get("imagePullPolicy"),
        image_pull_secrets=_list(spec.get("imagePullSecrets")),
        service_account_name=spec.get("serviceAccountName"),
        bootstrap_api_keys=_bootstrap_api_keys(spec.get("bootstrapAPIKeys")),
        config_mode=str(_mapping(spec.get("config")).get("mode") or "Merge"),
        config_text=config_text,
        config_field=config_field,
        config=config,
        config_problem=problem,
        cluster_domain=str(spec.get("clusterDomain") or DEFAULT_CLUSTER_DOMAIN),
        revision_history_limit=_int(spec.get("revisionHistoryLimit"), DEFAULT_REVISION_HISTORY_LIMIT),
        update_strategy=_update_strategy(spec.get("updateStrategy")),
        restart=_restart(spec.get("restart")),
        rebalance=_rebalance(spec.get("rebalance")),
        core=_node_template(spec.get("coreTemplate"), DEFAULT_CORES, core=True),
        replicant=_node_template(spec.get("replicantTemplate"), default_replicants(image), core=False),
        dashboard_service=_service_template(spec.get("dashboardServiceTemplate")),
        listeners_service=_service_template(spec.get("listenersServiceTemplate")),
        labels=_string_map(metadata.get("labels")),
    )

"""`kubectl emqx install|uninstall`: put the operator, its CRD and its RBAC into the cluster, or take
the operator out again (keeping the CRD and every EMQX cluster unless --purge)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import click

from kubectl_emqx.cli.common import confirm, emit, info, warn
from kubectl_emqx.cli.options import DEFAULT_WAIT_TIMEOUT, Duration, EmqxCommand, kube_options, state, yes_option
from kubectl_emqx.domain.vocabulary import CRD_NAME
from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.domain.install import InstallOptions
    from kubectl_emqx.kube.api import ManifestApi

# kubectl_emqx.domain.install's DEFAULT_NAMESPACE and LOG_LEVELS (not imported for --help; a test checks them)
DEFAULT_NAMESPACE = "emqx-operator-system"
LOG_LEVELS = ("debug", "info", "warning", "error")
CRD_ESTABLISH_SECONDS = 30.0
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _manifest_api() -> ManifestApi:
    # The real session implements both facades; ClusterApi stays the verbs' narrow one.
    return cast("ManifestApi", state().api())


def _operator_namespace() -> str:
    return state().explicit_namespace or DEFAULT_NAMESPACE


@click.command("install", cls=EmqxCommand)
@click.option("--values", "values_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Values in the Helm chart's format (charts/emqx-operator/values.yaml): image, resources, "
              "nodeSelector, tolerations, affinity, security contexts, extraEnv, metrics Service, ServiceMonitor, "
              "... Repeatable, later files win; the flags below win over files.")
@click.option("--watch-namespace", "watch_namespaces", multiple=True, metavar="NS",
              help="Manage EMQX clusters only in this namespace (repeatable; a Role per namespace instead of "
              "a ClusterRole). Default: every namespace.")
@click.option("--image", metavar="IMAGE", default=None, help="Operator image (default: the plugin's release).")
@click.option("--replicas", type=click.IntRange(1, 9), default=None,
              help="Operator pods (default 1); one leads through a Lease, the others stand by.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None,
              help="The operator's log level (default info).")
@click.option("--service-monitor", is_flag=True, default=None,
              help="Also a Prometheus Operator ServiceMonitor for the metrics Service (needs its CRD).")
@click.option("--crds-only", is_flag=True, help="Only the EMQX CRD (GitOps: manage it apart from the operator).")
@click.option("--skip-crds", is_flag=True, help="Everything but the EMQX CRD.")
@click.option("--dry-run", is_flag=True, help="Change nothing: with -o print the manifests, else list them.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default=None,
              help="Print the manifests (documents for `kubectl apply -f -`; the same input prints the same bytes).")
@click.option("--wait", is_flag=True, help="Wait until the operator Deployment is available.")
@click.option("--timeout", type=Duration(), default=DEFAULT_WAIT_TIMEOUT, show_default=True,
              help="How long --wait waits.")
@kube_options
def install(values_files: tuple[str, ...], watch_namespaces: tuple[str, ...], image: str | None,
            replicas: int | None, log_level: str | None, service_monitor: bool | None, crds_only: bool,
            skip_crds: bool, dry_run: bool, output: str | None, wait: bool, timeout: float) -> None:
    """Install or upgrade the EMQX operator, its CRD and its RBAC.

    The operator runs in the namespace given with -n (default emqx-operator-system) with
    permissions for exactly the calls it makes. Running install again upgrades it in place
    (server-side apply) and removes objects a previous install made that are no longer
    needed (e.g. RBAC after changing --watch-namespace). The Helm chart charts/emqx-operator
    installs the same objects from the same values.

    Users of the plugin need nothing cluster-wide. In the namespace of their clusters, a read-only
    user (list, status, logs, report) needs get/list/watch on emqxes.apps.emqx.io and pods, list
    on events, get on pods/log, and for report list on configmaps, services,
    persistentvolumeclaims, statefulsets, deployments, replicasets and poddisruptionbudgets;
    dashboard adds get and create on pods/portforward. Optional: list on secrets (report names their keys;
    get for dashboard --show-password) and list on deployments cluster-wide (report and version
    find the operator). Changing clusters (restart and rebalance too) needs create, patch and delete
    on emqxes.apps.emqx.io. backup and restore talk to EMQX through pods/portforward (get, create)
    and need get on the secrets NAME-bootstrap-api-key (the operator's API key and the dashboard
    password; resourceNames can narrow it to those).

    \b
    Examples:
      kubectl emqx install
      kubectl emqx install -n ops --watch-namespace mqtt --watch-namespace mqtt-staging
      kubectl emqx install --values my-values.yaml
      kubectl emqx install --dry-run -o yaml | kubectl apply -f -
      kubectl emqx install --crds-only --dry-run -o yaml > crds.yaml      # GitOps: two sources
      kubectl emqx install --skip-crds --dry-run -o yaml > operator.yaml
    """
    from kubectl_emqx.domain import install as manifests

    if crds_only and skip_crds:
        raise click.UsageError("use either --crds-only or --skip-crds, not both")
    options = _install_options(values_files, watch_namespaces, image, replicas, log_level, service_monitor)
    objects = manifests.build_manifests(options, crds="only" if crds_only else "skip" if skip_crds else "include")
    if dry_run:
        if output:
            emit(manifests.render(objects, output))
        else:
            for obj in objects:
                info(f"{manifests.object_ref(obj)} (dry run)")
        return

    api = _manifest_api()
    if not crds_only:
        _refuse_helm_release(api, options.namespace, "change it with `helm upgrade {release} -n {namespace}`")
        _warn_about_other_operators(options.namespace)
        if options.service_monitor and api.get_object("CustomResourceDefinition",
                                                      manifests.SERVICE_MONITOR_CRD) is None:
            raise errors.PluginError(
                f"--service-monitor needs the Prometheus Operator's CRD {manifests.SERVICE_MONITOR_CRD}, which this "
                "cluster does not have: install the Prometheus Operator first, or leave the ServiceMonitor out")
        scope = ", ".join(options.watch_namespaces) if options.watch_namespaces else "every namespace"
        info(f"Installing the EMQX operator {manifests.labels(options)[manifests.VERSION_LABEL]} "
             f"into namespace {options.namespace} (managing EMQX clusters in {scope})")
    for obj in objects:
        if obj["kind"] == "Namespace" and api.get_object("Namespace", options.namespace) is not None:
            info(f"{manifests.object_ref(obj)} exists (kept as it is)")
            continue
        api.apply_object(obj)
        info(f"{manifests.object_ref(obj)} applied")
        if obj["kind"] == "CustomResourceDefinition":
            _wait_established(api, obj["metadata"]["name"])
    if not crds_only:
        for ref in _prune(api, options, objects):
            info(f"{ref} deleted (no longer needed)")
    if output:
        emit(manifests.render(objects, output))
    if crds_only:
        info("Done: the CRD is installed.")
        return
    if skip_crds and api.get_object("CustomResourceDefinition", CRD_NAME) is None:
        warn(f"the CRD {CRD_NAME} is not installed: the operator cannot start until it is "
             "(kubectl emqx install --crds-only)")
    if wait:
        _wait_available(api, options, timeout)
    info("Done. Check it with `kubectl emqx version`.")


def _install_options(values_files: tuple[str, ...], watch_namespaces: tuple[str, ...], image: str | None,
                     replicas: int | None, log_level: str | None, service_monitor: bool | None) -> InstallOptions:
    """The chart's values from --values files, then the flags over them."""
    import dataclasses

    import yaml

    from kubectl_emqx.domain import install_values

    values: dict[str, Any] = {}
    for path in values_files:
        try:
            with click.open_file(path) as handle:
                loaded = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--values") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{path}: not a mapping of values", param_hint="--values")
        values = install_values.merge(values, loaded, keep_nulls=True)
    try:
        options = install_values.options_from_values(values, _operator_namespace())
    except install_values.ValuesError as exc:
        source = ", ".join(values_files) or "values"
        raise click.BadParameter(f"{source}: {exc}", param_hint="--values") from None
    overrides: dict[str, Any] = {}
    if watch_namespaces:
        overrides["watch_namespaces"] = watch_namespaces
    if image:
        overrides["image"] = image
    if replicas is not None:
        overrides["replicas"] = replicas
    if log_level:
        overrides["log_level"] = log_level
    if service_monitor:
        overrides["service_monitor"] = True
    options = dataclasses.replace(options, **overrides)
    from kubectl_emqx.domain import install as manifests

    problems = manifests.option_problems(options)
    if problems:
        raise click.UsageError(problems[0])
    return options


def _refuse_helm_release(api: ManifestApi, namespace: str, advice: str) -> None:
    """An operator Helm installed is Helm's to change: its release would no longer describe the cluster."""
    from kubectl_emqx.domain import install as manifests

    deployment = api.get_object("Deployment", manifests.NAME, namespace) or {}
    meta = deployment.get("metadata") or {}
    if (meta.get("labels") or {}).get(manifests.MANAGED_BY_LABEL) != manifests.HELM_MANAGED_BY:
        return
    release = (meta.get("annotations") or {}).get(manifests.HELM_RELEASE_ANNOTATION, "RELEASE")
    raise errors.PluginError(f"the EMQX operator in namespace {namespace} was installed by Helm (release {release}): "
                             + advice.format(release=release, namespace=namespace))


def _warn_about_other_operators(namespace: str) -> None:
    try:
        found = state().api().operator_deployments()
    except errors.PluginError:
        return
    for other in found:
        if other.namespace != namespace:
            warn(f"an EMQX operator also runs in {other.namespace}/{other.name}; two operators fight over the "
                 f"same clusters: remove it with `kubectl emqx uninstall -n {other.namespace}`")


def _wait_established(api: ManifestApi, name: str) -> None:
    deadline = time.monotonic() + CRD_ESTABLISH_SECONDS
    while True:
        crd = api.get_object("CustomResourceDefinition", name) or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        if time.monotonic() > deadline:
            raise errors.ApiServerError(f"the CRD {name} was not established within {CRD_ESTABLISH_SECONDS:.0f}s")
        time.sleep(0.2)


def _wait_available(api: ManifestApi, options: InstallOptions, timeout: float) -> None:
    from kubectl_emqx.domain import install as manifests

    info(f"Waiting for deployment/{manifests.NAME} in {options.namespace} to be available ...")
    deadline = time.monotonic() + timeout
    while True:
        deployment = api.get_object("Deployment", manifests.NAME, options.namespace) or {}
        status = deployment.get("status") or {}
        generation = (deployment.get("metadata") or {}).get("generation")
        if (status.get("observedGeneration") == generation and status.get("availableReplicas", 0) >= 1
                and status.get("updatedReplicas", 0) >= options.replicas):
            return
        if time.monotonic() > deadline:
            raise errors.WaitTimedOut(
                f"deployment/{manifests.NAME} in {options.namespace} is not available after {timeout:.0f}s; "
                f"see `kubectl -n {options.namespace} describe deployment {manifests.NAME}`"
            )
        time.sleep(1.0)


def _prune(api: ManifestApi, options: InstallOptions, objects: list[dict[str, Any]]) -> list[str]:
    from kubectl_emqx.domain import install as manifests

    wanted = {(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects}
    removed = []
    for kind in manifests.PRUNED_KINDS:
        for found in api.list_objects(kind, None, manifests.selector(options.namespace)):
            meta = found.get("metadata") or {}
            if (kind, meta.get("namespace"), meta.get("name")) not in wanted:
                api.delete_object(kind, meta["name"], meta.get("namespace"))
                removed.append(manifests.object_ref({"kind": kind, "metadata": meta}))
    return removed


@click.command("uninstall", cls=EmqxCommand)
@click.option("--purge", is_flag=True,
              help="Also delete the EMQX CRD, which makes Kubernetes delete every EMQX cluster (asks first).")
@yes_option
@kube_options
def uninstall(purge: bool, yes: bool) -> None:
    """Remove the EMQX operator installed in the namespace given with -n (default emqx-operator-system).

    The CRD and every EMQX cluster stay: the clusters keep running, unmanaged, until an operator is
    installed again. --purge also deletes the CRD, and with it every EMQX cluster in every namespace.
    """
    from kubectl_emqx.domain import install as manifests

    namespace = _operator_namespace()
    api = _manifest_api()
    _refuse_helm_release(api, namespace, "remove it with `helm uninstall {release} -n {namespace}`")
    clusters = _all_clusters()
    found = _installed_objects(api, namespace)
    if not found and not purge:
        elsewhere = [f"{o.namespace} (kubectl emqx uninstall -n {o.namespace})" for o in _other_operators(namespace)]
        hint = f"; an operator runs in {' and '.join(elsewhere)}" if elsewhere else ""
        raise errors.PluginError(f"no EMQX operator installed by kubectl emqx in namespace {namespace}{hint}")

    if purge:
        _confirm_purge(clusters, yes)
    for kind, name, object_namespace in found:
        if api.delete_object(kind, name, object_namespace):
            info(f"{manifests.object_ref({'kind': kind, 'metadata': {'name': name, 'namespace': object_namespace}})}"
                 " deleted")
    _delete_namespace_if_ours(api, namespace, [] if purge else clusters)

    if purge:
        if api.delete_object("CustomResourceDefinition", CRD_NAME):
            info(f"customresourcedefinition/{CRD_NAME} deleted: Kubernetes is deleting every EMQX "
                 "cluster")
        return
    blocked = [f"{_ref(c)} ({', '.join(c['metadata']['finalizers'])})" for c in clusters
               if (c.get("metadata") or {}).get("finalizers")]
    if blocked:
        warn("these EMQX resources carry finalizers nobody will remove now; deleting them (or their namespace) "
             "hangs until you clear them with `kubectl patch emqx NAME -n NS --type=merge -p "
             "'{\"metadata\":{\"finalizers\":null}}'`: " + ", ".join(blocked))
    kept = f"{len(clusters)} EMQX cluster(s) keep running, unmanaged" if clusters else "no EMQX clusters exist"
    info(f"Kept the CRD {CRD_NAME}; {kept}. `kubectl emqx install` manages them again.")


def _installed_objects(api: ManifestApi, namespace: str) -> list[tuple[str, str, str | None]]:
    """(kind, name, namespace) of what an install into `namespace` made, in removal order."""
    from kubectl_emqx.domain import install as manifests

    found: list[tuple[str, str, str | None]] = []
    for kind in reversed(manifests.KIND_ORDER):
        if kind in ("Namespace", "CustomResourceDefinition"):
            continue
        where = namespace if kind in ("Deployment", "ServiceAccount", "Service", "ServiceMonitor") else None
        for obj in api.list_objects(kind, where, manifests.selector(namespace)):
            meta = obj.get("metadata") or {}
            found.append((kind, meta["name"], meta.get("namespace")))
    # The Lease is written by the operator (no install labels); it only matters while one runs.
    for lease in api.list_objects("Lease", namespace, f"{manifests.NAME_LABEL}={manifests.NAME}"):
        found.append(("Lease", lease["metadata"]["name"], namespace))
    return found


def _all_clusters() -> list[dict[str, Any]]:
    try:
        return state().api().list_emqx(None)
    except errors.OperatorNotInstalled:  # no CRD: nothing to keep or purge
        return []


def _other_operators(namespace: str) -> list[Any]:
    try:
        return [o for o in state().api().operator_deployments() if o.namespace != namespace]
    except errors.PluginError:
        return []


def _ref(cluster: dict[str, Any]) -> str:
    meta = cluster.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _confirm_purge(clusters: list[dict[str, Any]], yes: bool) -> None:

    if clusters:
        listing = ", ".join(_ref(c) for c in clusters[:10]) + (" ..." if len(clusters) > 10 else "")
        doomed = f"{len(clusters)} EMQX cluster(s) will be DELETED with their pods and services: {listing}"
    else:
        doomed = "no EMQX clusters exist right now"
    warn(f"--purge deletes the CRD {CRD_NAME}. Deleting a CRD deletes every resource of that kind "
         f"in every namespace, so Kubernetes deletes every EMQX cluster: {doomed}.")
    confirm("Delete the operator, the CRD and every EMQX cluster?", yes)


def _delete_namespace_if_ours(api: ManifestApi, namespace: str, clusters: list[dict[str, Any]]) -> None:
    from kubectl_emqx.domain import install as manifests

    found = api.get_object("Namespace", namespace)
    if found is None:
        return
    labels = (found.get("metadata") or {}).get("labels") or {}
    if labels.get(manifests.NAME_LABEL) != manifests.NAME or namespace in PROTECTED_NAMESPACES:
        return  # not made by install: someone else's namespace
    if any((c.get("metadata") or {}).get("namespace") == namespace for c in clusters):
        info(f"namespace/{namespace} kept: EMQX clusters run in it")
        return
    api.delete_object("Namespace", namespace)
    info(f"namespace/{namespace} deleted")

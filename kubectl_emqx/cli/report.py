"""`kubectl emqx report NAME [-o FILE.zip] [--logs] [--since D]`: one archive for a support ticket.

Collects the EMQX resource (spec and status, the live configuration as the operator read it),
the status view, Events, every object the cluster owns, pod specs and statuses, optionally node
logs, and the operator's version, Deployment, pods and recent log; view/report.py turns that into
redacted files. Whatever cannot be read (RBAC, a pod without a log) is noted in errors.txt and
the rest is still written.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from kubectl_emqx import __version__
from kubectl_emqx.cli.common import info, load_cluster
from kubectl_emqx.cli.options import Duration, EmqxCommand, kube_options, name_argument, state
from kubectl_emqx.domain.vocabulary import CONTAINER_NAME, KIND, label_selector
from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.kube.pods import PodApi
    from kubectl_emqx.view.report import Collected

OWNED_KINDS = ("StatefulSet", "Deployment", "ReplicaSet", "Service", "ConfigMap", "Secret",
               "PodDisruptionBudget", "PersistentVolumeClaim")
OPERATOR_LOG_TAIL = 2000


@click.command("report", cls=EmqxCommand)
@name_argument
@click.option("-o", "--output", "path", metavar="FILE.zip", type=click.Path(dir_okay=False),
              help="Where to write the archive (default: report_<namespace>_<name>_<time>.zip here).")
@click.option("--logs", "with_logs", is_flag=True, help="Also each node's log (and its previous container's).")
@click.option("--since", type=Duration(),
              help="Only log lines newer than this (5m, 2h); default: node logs whole, the operator's "
                   f"last {OPERATOR_LOG_TAIL} lines.")
@kube_options
def report(name: str, path: str | None, with_logs: bool, since: float | None) -> None:
    """Write one zip archive describing cluster NAME for a support ticket: the resource and its
    status, Events, every owned object, pods, the live configuration, the operator's version,
    Deployment and log, and (with --logs) the nodes' logs. Secret values are never included:
    Secrets are listed by name and keys; README.txt inside says what is where.

    \b
    Examples:
      kubectl emqx report demo
      kubectl emqx report demo --logs --since 2h -o demo-report.zip
    """
    from kubectl_emqx.domain.vocabulary import utc_now
    from kubectl_emqx.view import report as report_view

    api = state().api()
    namespace = api.namespace
    body = load_cluster(api, name, namespace)
    created = utc_now()
    flags = (" --logs" if with_logs else "") + (f" --since {int(since)}s" if since else "")
    collected = report_view.Collected(name=name, namespace=namespace, created=created, version=__version__,
                                      flags=flags, resource=body, logs_requested=with_logs)
    collect(api, collected, body, with_logs, int(since) if since else None)
    contents = report_view.files(collected)
    target = path or f"report_{namespace}_{name}_{created.strftime('%Y%m%d-%H%M%S')}.zip"
    size = write_zip(target, contents, created)
    click.echo(target)
    problems = f"; {len(collected.errors)} part(s) could not be collected (see errors.txt)" if collected.errors else ""
    info(f"wrote {target}: {len(contents)} files, {size / 1024:.0f} KiB{problems}")


def collect(api: Any, collected: Collected, body: dict[str, Any], with_logs: bool, since: int | None) -> None:
    from kubectl_emqx.kube.pods import PodApi

    namespace, name = collected.namespace, collected.name
    pod_api = PodApi(api, streams=8)

    def attempt(what: str, action: Any) -> Any:
        try:
            return action()
        except errors.PluginError as exc:
            collected.errors.append(f"{what}: {exc.message}")
            return None

    collected.summary = attempt("summary.txt", lambda: _summary(api, body)) or ""
    selector = label_selector(name)
    for kind in OWNED_KINDS:
        items = attempt(f"objects/{kind}", lambda kind=kind: api.list_objects(kind, namespace, selector)) or []
        collected.objects.extend(_with_kind(item, kind) for item in items)
    listed = attempt("pods", lambda: pod_api.list_pods(namespace, selector))
    collected.pods = [_with_kind(pod, "Pod") for pod in (listed[0] if listed else [])]

    uids = {(body.get("metadata") or {}).get("uid")} | {
        (obj.get("metadata") or {}).get("uid") for obj in [*collected.objects, *collected.pods]}
    names = {(KIND, name)} | {(obj["kind"], obj["metadata"]["name"]) for obj in [*collected.objects, *collected.pods]}
    events = attempt("events", lambda: api.list_objects("Event", namespace)) or []
    collected.events = [_with_kind(event, "Event") for event in events if _involves(event, uids, names)]

    secrets = attempt("secret values for the final scrub (the archive holds none either way)",
                      lambda: api.list_objects("Secret", namespace))
    collected.secrets = list(secrets or [])

    if with_logs:
        _node_logs(pod_api, collected, since)
    _operator(api, pod_api, collected, since, attempt)


def _summary(api: Any, body: dict[str, Any]) -> str:
    """`kubectl emqx status` as text, then every condition in full (status shows only their reasons)."""
    from kubectl_emqx.cli.status import build_status
    from kubectl_emqx.view import render

    text = render.status_text(build_status(api, body), render.Style(False), False)
    conditions = (body.get("status") or {}).get("conditions") or []
    lines = [f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}, since {c.get('lastTransitionTime', '?')}): "
             f"{c.get('message', '')}" for c in conditions]
    return text + ("\nConditions in full\n" + "\n".join(lines) + "\n" if lines else "")


def _with_kind(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    from kubectl_emqx.domain.vocabulary import KIND_PATHS

    prefix = KIND_PATHS[kind][0].strip("/").split("/")
    api_version = "/".join(prefix[1:]) if prefix[0] == "apis" else prefix[1]
    return {"apiVersion": api_version, "kind": kind, **{k: v for k, v in obj.items() if k not in ("kind",)}}


def _involves(event: dict[str, Any], uids: set[Any], names: set[tuple[str, str]]) -> bool:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return involved.get("uid") in uids or (involved.get("kind"), involved.get("name")) in names


def _node_logs(pod_api: PodApi, collected: Collected, since: int | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kubectl_emqx.view import pods as pod_view

    jobs: list[tuple[str, str, bool]] = []  # (archive path, pod, previous)
    for pod in collected.pods:
        name = pod_view.name(pod)
        if pod_view.container_started(pod):
            jobs.append((f"logs/{name}.log", name, False))
        else:
            collected.errors.append(f"logs/{name}.log: the container has not started; no log")
        if pod_view.has_previous(pod):
            jobs.append((f"logs/{name}.previous.log", name, True))

    def read(job: tuple[str, str, bool]) -> str:
        stream = pod_api.log(collected.namespace, job[1], container=CONTAINER_NAME, since_seconds=since,
                             previous=job[2])
        return "".join(f"{line}\n" for line in stream)

    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
        for job, future in [(job, pool.submit(read, job)) for job in jobs]:
            try:
                collected.logs[job[0]] = future.result()
            except errors.PluginError as exc:
                collected.errors.append(f"{job[0]}: {exc.message}")


def _operator(api: Any, pod_api: PodApi, collected: Collected, since: int | None, attempt: Any) -> None:
    found = attempt("operator (its Deployment is looked up cluster-wide by label app.kubernetes.io/name="
                    "emqx-operator)", api.operator_deployments)
    if found is None:
        collected.operator_version = "unknown: the operator's Deployment could not be looked up (see errors.txt)\n"
        return
    if not found:
        collected.operator_version = ("no operator Deployment in the cluster (label app.kubernetes.io/name="
                                      "emqx-operator); it may run elsewhere\n")
        return
    collected.operator_version = "".join(
        f"{item.version or 'unknown (no version label)'}  {item.namespace}/{item.name}\n" for item in found)
    for item in found:
        base = f"operator/{item.namespace}"
        deployment = attempt(f"{base}/deployment.yaml",
                             lambda item=item: api.get_object("Deployment", item.name, item.namespace))
        if not deployment:
            continue
        collected.operator_objects[f"{base}/deployment.yaml"] = _with_kind(deployment, "Deployment")
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        listed = attempt(f"{base}/pods", lambda item=item, selector=selector: pod_api.list_pods(item.namespace,
                                                                                                 selector))
        for pod in (listed[0] if listed else []):
            pod_name = pod["metadata"]["name"]
            collected.operator_objects[f"{base}/pods/{pod_name}.yaml"] = _with_kind(pod, "Pod")
            container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")

            def read(pod_name: str = pod_name, container: str = container, namespace: str = item.namespace) -> str:
                stream = pod_api.log(namespace, pod_name, container=container, since_seconds=since,
                                     tail_lines=None if since else OPERATOR_LOG_TAIL)
                return "".join(f"{line}\n" for line in stream)

            text = attempt(f"{base}/logs/{pod_name}.log", read)
            if text is not None:
                collected.logs[f"{base}/logs/{pod_name}.log"] = text


def write_zip(path: str, contents: dict[str, str], created: Any) -> int:
    """Write the archive next to its final place, then rename it there; returns its size."""
    import tempfile
    import zipfile

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise errors.PluginError(f"-o {path}: directory {directory} does not exist")
    stamp = created.timetuple()[:6]
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".zip", dir=directory)
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(contents, key=lambda item: (item != "README.txt", item)):
                entry = zipfile.ZipInfo(name, date_time=stamp)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, contents[name])
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # as any file the user writes (mkstemp makes it 0600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return os.path.getsize(path)

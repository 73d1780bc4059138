"""A small dynamic volume provisioner for the sandbox's StorageClass.

For each pending PersistentVolumeClaim of class `sandbox-local` it creates a hostPath
PersistentVolume pre-bound to the claim (the controller-manager completes the binding), and it
deletes the volume (and its directory) once released. kwok pods never mount anything; the
directories exist so that the volumes are real paths on this machine.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

PROVISIONER = "sandbox.local/hostpath"
STORAGE_CLASS = "sandbox-local"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

log = logging.getLogger("sandbox.provisioner")


def volume_name(claim_uid: str) -> str:
    return f"pvc-{claim_uid}"


def build_volume(claim: Any, root: Path) -> dict[str, Any]:
    meta = claim.metadata
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(meta.uid),
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "labels": {"sandbox.local/claim-namespace": meta.namespace},
        },
        "spec": {
            "capacity": {"storage": claim.spec.resources.requests.get("storage", "1Gi")},
            "accessModes": claim.spec.access_modes or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": claim.spec.volume_mode or "Filesystem",
            "hostPath": {"path": str(root / volume_name(meta.uid)), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta.namespace,
                "name": meta.name, "uid": meta.uid,
            },
        },
    }


def wants_volume(claim: Any) -> bool:
    if claim.status is not None and claim.status.phase == "Bound":
        return False
    if claim.spec.volume_name:
        return False
    if claim.metadata.deletion_timestamp is not None:
        return False
    return (claim.spec.storage_class_name or STORAGE_CLASS) == STORAGE_CLASS


def run(kubeconfig: str, root: Path) -> None:
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException

    api_client = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api_client)
    root.mkdir(parents=True, exist_ok=True)

    def provision(claim: Any) -> None:
        if not wants_volume(claim):
            return
        body = build_volume(claim, root)
        (root / body["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
        try:
            core.create_persistent_volume(body, _request_timeout=10)
            log.info("provisioned %s for %s/%s", body["metadata"]["name"], claim.metadata.namespace,
                     claim.metadata.name)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def reclaim(volume: Any) -> None:
        annotations = volume.metadata.annotations or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        if volume.status is None or volume.status.phase not in ("Released", "Failed"):
            return
        try:
            core.delete_persistent_volume(volume.metadata.name, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 404:
                raise
        shutil.rmtree(root / volume.metadata.name, ignore_errors=True)
        log.info("deleted released volume %s", volume.metadata.name)

    def watch_forever(list_fn: Any, handle: Any) -> None:
        while True:
            try:
                listing = list_fn(_request_timeout=10)
                for item in listing.items:
                    handle(item)
                stream = watch.Watch().stream(
                    list_fn, resource_version=listing.metadata.resource_version, timeout_seconds=60
                )
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(event["object"])
            except ApiException as exc:
                log.warning("API error %s; retrying", exc.status)
                time.sleep(0.5)
            except Exception as exc:  # keep the sandbox helper alive across transient errors
                log.warning("error: %s; retrying", exc)
                time.sleep(0.5)

    volumes_thread = threading.Thread(
        target=watch_forever, args=(core.list_persistent_volume, reclaim), daemon=True
    )
    volumes_thread.start()
    watch_forever(core.list_persistent_volume_claim_for_all_namespaces, provision)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.provisioner")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(args.kubeconfig, args.root)


if __name__ == "__main__":
    main()

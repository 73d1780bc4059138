"""The simulator's data backup API (export, files, upload, import) against the facts of
emqx_mgmt_data_backup.erl / emqx_mgmt_api_data_backup.erl, and a round trip of what it models."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from sandbox.emqxsim.testing import Harness, emqx_pod

CORE = "emqx@emqx-core-{}.emqx-headless.ns.svc.cluster.local"


def cluster(image: str, cores: int = 2) -> Harness:
    harness = Harness(None)
    licence = [{"name": "EMQX_LICENSE__KEY", "value": "evaluation"}]
    harness.add(*[emqx_pod(f"emqx-core-{index}", image=image, extra_env=licence) for index in range(cores)])
    return harness


def body(response: Any) -> Any:
    return json.loads(response.body)


def bearer(sim: Harness) -> dict[str, str]:
    node = sim.record("ns/emqx-core-0").node
    password = node.cluster.admins["admin"]
    login = sim.call("ns/emqx-core-0", "POST", "/api/v5/login", auth=None,
                     body=json.dumps({"username": "admin", "password": password}))
    return {"Authorization": f"Bearer {body(login)['token']}"}


def export(sim: Harness, pod: str = "ns/emqx-core-0", **call: Any) -> tuple[str, bytes]:
    answer = sim.call(pod, "POST", "/api/v5/data/export", body="{}", **call)
    assert answer.status == 200, answer.body
    info = body(answer)
    download = sim.call(pod, "GET", f"/api/v5/data/files/{info['filename']}", query={"node": info["node"]}, **call)
    assert download.status == 200
    return info["filename"], download.body


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: (archive.extractfile(m) or io.BytesIO()).read() for m in archive.getmembers() if m.isfile()}


def multipart(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "simboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{name}\"\r\n"
               f"Content-Type: application/gzip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return payload, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(sim: Harness, name: str, data: bytes, pod: str = "ns/emqx-core-1", **call: Any) -> Any:
    payload, headers = multipart(name, data)
    return sim.call(pod, "POST", "/api/v5/data/files", body=payload, headers={**headers, **call.pop("headers", {})},
                    **call)


def sysmon(sim: Harness, pod: str) -> Any:
    return sim.record(pod).node.running_config["sysmon"]["vm"]["long_gc"]


def put_long_gc(sim: Harness, value: str) -> None:
    answer = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", query={"mode": "merge"},
                      body=f"sysmon.vm.long_gc = {value}\n", headers={"Content-Type": "text/plain"})
    assert answer.status == 200, answer.body


def test_export_is_a_tar_gz_under_its_own_name_with_meta_config_and_tables() -> None:
    with cluster("emqx/emqx:5.8.9") as sim:
        put_long_gc(sim, "200ms")
        name, data = export(sim)
        assert name.startswith("emqx-export-") and name.endswith(".tar.gz")
        base = name[: -len(".tar.gz")]
        files = members(data)
        assert set(files) == {f"{base}/META.hocon", f"{base}/cluster.hocon", f"{base}/mnesia/emqx_app",
                              f"{base}/mnesia/emqx_admin"}
        assert files[f"{base}/META.hocon"].decode() == 'edition = ce\nversion = "5.8.9"\n'
        assert b"long_gc" in files[f"{base}/cluster.hocon"] and b"200ms" in files[f"{base}/cluster.hocon"]
        listing = body(sim.call("ns/emqx-core-1", "GET", "/api/v5/data/files"))  # cluster-wide
        assert [f["filename"] for f in listing["data"]] == [name] and listing["data"][0]["node"] == CORE.format(0)
        assert listing["meta"] == {"page": 1, "limit": 100, "count": 1, "hasnext": False}
        download = sim.call("ns/emqx-core-0", "GET", f"/api/v5/data/files/{name}")
        assert download.content_type == "application/octet-stream"
        elsewhere = sim.call("ns/emqx-core-1", "GET", f"/api/v5/data/files/{name}")  # the serving node's file
        assert (elsewhere.status, body(elsewhere)) == (404, {"code": "NOT_FOUND", "message": "backup file not found"})
        unknown = sim.call("ns/emqx-core-0", "GET", f"/api/v5/data/files/{name}", query={"node": "emqx@x"})
        assert (unknown.status, body(unknown)["message"]) == (400, "Unknown node: emqx@x")
        sets = sim.call("ns/emqx-core-0", "POST", "/api/v5/data/export", body=json.dumps({"table_sets": ["x"]}))
        assert body(sets) == {"code": "BAD_REQUEST", "message": "Invalid table sets: x"}
        assert sim.call("ns/emqx-core-0", "DELETE", f"/api/v5/data/files/{name}").status == 204


def test_versions_without_the_api_and_the_old_content_type() -> None:
    with cluster("emqx/emqx:5.3.2", cores=1) as sim:
        assert sim.call("ns/emqx-core-0", "POST", "/api/v5/data/export", body="{}").status == 404
    with cluster("emqx/emqx:5.8.5", cores=1) as sim:
        name, _ = export(sim)
        download = sim.call("ns/emqx-core-0", "GET", f"/api/v5/data/files/{name}")
        assert download.content_type == "application/json"  # minirest's binary encoder before 5.8.6


def test_round_trip_brings_back_configuration_and_api_keys_on_every_node() -> None:
    with cluster("emqx/emqx:5.8.9") as sim:
        token = bearer(sim)
        put_long_gc(sim, "200ms")
        created = sim.call("ns/emqx-core-0", "POST", "/api/v5/api_key", auth=None, headers=token,
                           body=json.dumps({"name": "ci"}))
        assert created.status == 200
        name, data = export(sim)
        put_long_gc(sim, "900ms")
        assert sim.call("ns/emqx-core-0", "DELETE", "/api/v5/api_key/ci", auth=None, headers=token).status == 204
        assert upload(sim, name, data).status == 204  # stored on core-1
        again = upload(sim, name, data)
        assert body(again) == {"code": "BAD_REQUEST", "message": f'Backup file "{name}" already exists'}
        imported = sim.call("ns/emqx-core-1", "POST", "/api/v5/data/import", body=json.dumps({"filename": name}))
        assert imported.status == 204, imported.body
        for pod in ("ns/emqx-core-0", "ns/emqx-core-1"):
            assert sysmon(sim, pod) == "200ms"
        keys = [k["name"] for k in body(sim.call("ns/emqx-core-0", "GET", "/api/v5/api_key", auth=None,
                                                 headers=token))]
        assert "ci" in keys


def test_upload_and_import_refuse_what_emqx_refuses() -> None:
    with cluster("emqx/emqx-enterprise:5.8.0") as sim:
        name, data = export(sim)
    with cluster("emqx/emqx:5.8.9") as sim:
        refused = upload(sim, name, data)
        assert body(refused) == {"code": "BAD_REQUEST",
                                 "message": "importing EMQX Enterprise data backup to EMQX is not allowed"}
        assert sim.call("ns/emqx-core-1", "GET", "/api/v5/data/files").status == 200
        assert body(sim.call("ns/emqx-core-1", "GET", "/api/v5/data/files"))["data"] == []  # deleted again
        renamed = upload(sim, "backup.tar.gz", export(sim)[1])
        assert "must be under <backup name> directory" in body(renamed)["message"]
        assert "extension" in body(upload(sim, "backup.zip", b"x"))["message"]
    with cluster("emqx/emqx-enterprise:5.9.1") as sim:
        newer_name, newer = export(sim)
    with cluster("emqx/emqx-enterprise:5.8.9") as sim:
        assert body(upload(sim, newer_name, newer))["message"] == (
            '[warning] Backup version "5.9.1" is newer than EMQX version "5.8.9", import is not allowed.\n')


def test_api_key_callers_lose_the_sensitive_tables_from_e5_8_11() -> None:
    with cluster("emqx/emqx-enterprise:5.8.11") as sim:
        name, data = export(sim)  # with the operator's API key
        base = name[: -len(".tar.gz")]
        assert f"{base}/mnesia/emqx_app" not in members(data)
        full_name, full = export(sim, auth=None, headers=bearer(sim))
        assert f"{full_name[:-7]}/mnesia/emqx_app" in members(full)
        assert upload(sim, full_name, full, pod="ns/emqx-core-1").status == 204
        refused = sim.call("ns/emqx-core-1", "POST", "/api/v5/data/import", body=json.dumps({"filename": full_name}))
        assert (refused.status, body(refused)) == (403, {
            "code": "FORBIDDEN",
            "message": "API key import refused: backup contains restricted tables: api_keys, dashboard_users"})
        as_admin = sim.call("ns/emqx-core-1", "POST", "/api/v5/data/import", auth=None, headers=bearer(sim),
                            body=json.dumps({"filename": full_name}))
        assert as_admin.status == 204
    with cluster("emqx/emqx-enterprise:5.10.0") as sim:
        name, data = export(sim)
        assert f"{name[:-7]}/mnesia/emqx_app" in members(data)  # 5.10.0-5.10.3 do not filter

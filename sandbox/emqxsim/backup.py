"""EMQX's data backup (export/import) for what the simulator models: the cluster configuration
(`cluster.hocon`), API keys (`emqx_app`) and dashboard users (`emqx_admin`).

Facts from apps/emqx_management/src/emqx_mgmt_data_backup.erl and emqx_mgmt_api_data_backup.erl
(v5.4.0, v5.6.1, v5.8.2, v5.8.5, v5.8.6, v5.8.9, e5.10.4):
- The HTTP API exists from 5.4.0. An export is written on the serving node, into its
  `data/backup/`, as `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz` (the node's local time); a
  gzip tar whose entries all live under a directory named like the file without `.tar.gz`:
  `META.hocon` (`edition = ce|ee`, `version = "X.Y.Z"`), `cluster.hocon` (the node's
  data/configs/cluster.hocon; only `root_keys` when asked, 5.8.2+) and `mnesia/<table>` per table
  (EMQX writes mnesia backup files; the simulator writes its own JSON in their place).
- Upload (POST /data/files, multipart field `filename`) and import validate the archive: the name
  ends in .tar.gz, every entry is under that name's directory, META names ce/ee and a version; an
  ee archive is never imported into ce; one whose major.minor is newer is refused (the patch is
  not compared); cluster.hocon must parse. An upload never overwrites; from 5.6.1 an invalid one is
  deleted again.
- Import runs on a core (the file is copied there first): the roots of ?CONF_KEYS are updated one
  by one (each a shallow merge of the archive's root into the running one, written to every node's
  cluster.hocon), listeners are merged per type; tables are restored with `keep_tables`: records
  of the archive overwrite those with the same key, the others stay.
- From e5.8.11, e5.9.3, e5.10.4, callers with an API key (not a dashboard token) export without
  the `api_keys` and `dashboard_users` table sets, and an import of an archive holding them is
  refused with 403.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from . import versions
from .hocon import HoconError, dump_hocon, parse
from .versions import EmqxImage, Gate

DATA_BACKUP_API = Gate((5, 4, 0), (5, 4, 0))
EXPORT_BODY = Gate((5, 8, 2), (5, 8, 2))  # table_sets / root_keys
EXPORT_ROOT_KEYS_CHECKED = Gate((5, 8, 5), (5, 8, 5))  # 400 Invalid root keys
DOWNLOAD_OCTET_STREAM = Gate((5, 8, 6), (5, 8, 8))  # application/json on raw bytes before (minirest)
INVALID_UPLOAD_DELETED = Gate((5, 6, 1), (5, 6, 1))
DURABLE_SESSIONS_KEY = Gate((5, 7, 0), (5, 7, 0))  # session_persistence before

TAR_SUFFIX = ".tar.gz"
META = "META.hocon"
CLUSTER_HOCON = "cluster.hocon"
# table set -> the tables the simulator models (emqx_mgmt_auth / emqx_dashboard_admin backup_tables/0)
TABLE_SETS = {"api_keys": "emqx_app", "dashboard_users": "emqx_admin"}
# Sets EMQX also has that the simulator keeps no data for (accepted in table_sets, exported empty).
OTHER_TABLE_SETS = ("banned", "builtin_authn", "builtin_authz", "psk")
SENSITIVE_TABLE_SETS = ("api_keys", "dashboard_users")


def conf_keys(image: EmqxImage) -> list[str]:
    """?CONF_KEYS: roots imported as they are (a shallow merge each). EMQX also imports `cluster.links`
    from 5.8.0; the simulator does not model cluster links."""
    keys = ["delayed", "rewrite", "retainer", "mqtt", "alarm", "sysmon", "sys_topics", "limiter", "log",
            "persistent_session_store",
            "durable_sessions" if image.at_least(DURABLE_SESSIONS_KEY) else "session_persistence",
            "prometheus", "crl_cache", "conn_congestion", "force_shutdown", "flapping_detect", "broker", "force_gc",
            "zones", "slow_subs"]
    return keys


def api_key_restricted(image: EmqxImage) -> bool:
    """e5.8.11, e5.9.3, e5.10.4 (commit 9f6ac23c44): API-key callers lose the sensitive table sets."""
    version = image.version
    if not (image.enterprise or version >= (5, 9, 0)):
        return False
    return ((5, 8, 11) <= version < (5, 9, 0)) or ((5, 9, 3) <= version < (5, 10, 0)) or version >= (5, 10, 4)


def edition_word(image: EmqxImage) -> str:
    """emqx_release:edition(): ee for Enterprise and every 5.9+ build."""
    return "ee" if image.enterprise or image.version >= (5, 9, 0) else "ce"


def file_name(now: float | None = None) -> str:
    moment = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(moment))  # the pod's local time: UTC
    return f"emqx-export-{stamp}.{int(moment * 1000) % 1000:03d}{TAR_SUFFIX}"


def build_archive(name: str, image: EmqxImage, cluster_hocon: dict[str, Any], tables: dict[str, Any]) -> bytes:
    base = name[: -len(TAR_SUFFIX)]
    meta = f'edition = {edition_word(image)}\nversion = "{versions.format_version(image.version)}"\n'
    entries = [(f"{base}/{META}", meta.encode()), (f"{base}/{CLUSTER_HOCON}", dump_hocon(cluster_hocon).encode())]
    for table, records in tables.items():
        entries.append((f"{base}/mnesia/{table}", json.dumps(records, sort_keys=True).encode()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class BackupError(Exception):
    """format_error/1 of the reason, as the API shows it."""


@dataclass
class Archive:
    meta: dict[str, Any]
    cluster_hocon: dict[str, Any] | None
    tables: dict[str, Any]  # table -> records (the simulator's JSON)


def read_archive(name: str, data: bytes, image: EmqxImage) -> Archive:
    """validate_filenames + validate_backup (+ check_edition/check_version) + cluster.hocon parsing."""
    if not name.endswith(TAR_SUFFIX) or "/" in name:
        raise BackupError(f"invalid backup name: file name must have {TAR_SUFFIX} extension")
    base = name[: -len(TAR_SUFFIX)]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
            if any(member.name.split("/", 1)[0] != base for member in members):
                raise BackupError("invalid backup archive content: all files in the archive must be under "
                                  "<backup name> directory")
            files = {member.name[len(base) + 1:]: (archive.extractfile(member) or io.BytesIO()).read()
                     for member in members if member.isfile()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{exc}") from None
    try:
        meta = parse(files[META].decode()) if META in files else {}
    except (HoconError, UnicodeDecodeError):
        meta = {}
    if "edition" not in meta or "version" not in meta:
        raise BackupError(f"invalid backup archive file: missing {META}")
    edition, version = str(meta["edition"]), str(meta["version"])
    if edition not in ("ce", "ee"):
        raise BackupError(f"invalid backup archive content: wrong EMQX edition value in {META}")
    if edition == "ee" and edition_word(image) == "ce":
        raise BackupError("importing EMQX Enterprise data backup to EMQX is not allowed")
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise BackupError(f"invalid backup archive content: wrong EMQX version value in {META}") from None
    own = image.version
    if major > own[0] or minor > own[1]:  # check_version/1 compares the minor alone
        raise BackupError(f'[warning] Backup version "{version}" is newer than EMQX version '
                          f'"{versions.format_version(own)}", import is not allowed.\n')
    cluster = None
    if CLUSTER_HOCON in files:
        try:
            cluster = parse(files[CLUSTER_HOCON].decode())
        except (HoconError, UnicodeDecodeError) as exc:
            raise BackupError(f"{exc}") from None
    tables = {}
    for path, content in files.items():
        if path.startswith("mnesia/"):
            try:
                tables[path[len("mnesia/"):]] = json.loads(content)
            except ValueError:
                tables[path[len("mnesia/"):]] = None
    return Archive(meta, cluster, tables)


def sensitive_sets(archive: Archive) -> list[str]:
    return [name for name in SENSITIVE_TABLE_SETS if TABLE_SETS[name] in archive.tables]


def merged_roots(image: EmqxImage, running: dict[str, Any], imported: dict[str, Any]) -> dict[str, Any]:
    """The roots an import writes: ?CONF_KEYS present in the archive, each the running raw root with
    the archive's keys over it (maps:merge); listeners merged per type (emqx_mgmt_listeners_conf)."""
    roots: dict[str, Any] = {}
    for key in conf_keys(image):
        value = imported.get(key)
        if value is None:
            continue
        old = running.get(key)
        roots[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    listeners = imported.get("listeners")
    if isinstance(listeners, dict):
        found = running.get("listeners")
        old_listeners: dict[str, Any] = found if isinstance(found, dict) else {}
        merged = {}
        for kind in sorted(set(old_listeners) | set(listeners)):
            old_kind, new_kind = old_listeners.get(kind) or {}, listeners.get(kind) or {}
            if isinstance(old_kind, dict) and isinstance(new_kind, dict):
                merged[kind] = {**old_kind, **new_kind}
        roots["listeners"] = merged
    return roots

"""What a backup archive holds, read locally before anything is sent (pure; standard library).

EMQX's archive (emqx_mgmt_data_backup.erl): a gzip tar whose entries all live under a directory
named like the file without `.tar.gz` (EMQX refuses a file whose name does not match it, so the
plugin uploads it under that name whatever the local file is called): `META.hocon` (`edition =
ce|ee`, `version = "X.Y.Z"`), `cluster.hocon` (the cluster-level configuration: what was changed
through the dashboard or the API, not emqx.conf), and `mnesia/<table>` (built-in data: API keys,
dashboard users, banned clients, built-in authentication and ACL, PSK, retained messages).
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field

SUFFIX = ".tar.gz"
TABLE_NAMES = {
    "emqx_app": "API keys", "emqx_admin": "dashboard users", "emqx_banned": "banned clients",
    "emqx_banned_rules": "ban rules", "emqx_authn_mnesia": "built-in authentication users",
    "emqx_authn_scram_mnesia": "built-in authentication users (SCRAM)", "emqx_acl": "built-in ACL rules",
    "emqx_psk": "PSK identities", "emqx_retainer_message": "retained messages", "emqx_mt_config": "tenants",
}
# Roots an import never touches (emqx_mgmt_data_backup: import_skip_root_keys, and no importer).
NOT_IMPORTED = ("node", "rpc", "dashboard", "api_key")


class ArchiveError(ValueError):
    """Not an EMQX backup archive: one line naming what is wrong."""


@dataclass(frozen=True)
class ArchiveInfo:
    name: str  # the file name EMQX knows it by: <root directory>.tar.gz
    edition: str  # ce | ee
    version: str
    roots: tuple[str, ...] = ()  # top-level keys of cluster.hocon
    tables: tuple[str, ...] = ()
    size: int = 0
    config_error: str = ""  # cluster.hocon did not parse here (EMQX will judge it)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def edition_word(self) -> str:
        return "Enterprise" if self.edition == "ee" else "Opensource"

    def lines(self) -> list[str]:
        imported = [root for root in self.roots if root not in NOT_IMPORTED]
        skipped = [root for root in self.roots if root in NOT_IMPORTED]
        lines = [f"archive: {self.name}, from EMQX {self.edition_word} {self.version}, {self.size} bytes"]
        lines.append("configuration (cluster.hocon): " + (", ".join(imported) if imported else "nothing"))
        if skipped:
            lines.append(f"  not imported by EMQX: {', '.join(skipped)}")
        if self.config_error:
            lines.append(f"  (cluster.hocon does not parse here: {self.config_error})")
        tables = [f"{TABLE_NAMES.get(t, t)} ({t})" for t in self.tables]
        lines.append("built-in data: " + (", ".join(tables) if tables else "none"))
        return lines


def read(data: bytes) -> ArchiveInfo:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            roots = {m.name.split("/", 1)[0] for m in archive.getmembers()}
            if len(roots) != 1:
                raise ArchiveError("not an EMQX backup: its files are not all under one directory "
                                   f"({', '.join(sorted(roots)) or 'empty archive'})")
            base = roots.pop()

            def text(path: str) -> str | None:
                member = next((m for m in members if m.name == f"{base}/{path}"), None)
                found = archive.extractfile(member) if member is not None else None
                return found.read().decode("utf-8", "replace") if found is not None else None

            meta, cluster = text("META.hocon"), text("cluster.hocon")
            tables = tuple(sorted(m.name.rsplit("/", 1)[1] for m in members if m.name.startswith(f"{base}/mnesia/")))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a gzip tar archive: {exc}") from None
    if meta is None:
        raise ArchiveError(f"not an EMQX backup: {base}/META.hocon is missing")
    fields = dict(re.findall(r'^\s*(edition|version)\s*[=:]\s*"?([^"\s]+)"?\s*$', meta, re.MULTILINE))
    if "edition" not in fields or "version" not in fields:
        raise ArchiveError("not an EMQX backup: META.hocon names no edition and version")
    roots_found: tuple[str, ...] = ()
    problem = ""
    if cluster is not None:
        from kubectl_emqx.domain import hocon

        try:
            roots_found = tuple(hocon.parse(cluster))
        except hocon.HoconError as exc:
            problem = str(exc)
    return ArchiveInfo(base + SUFFIX, fields["edition"], fields["version"], roots_found, tables, len(data), problem)

"""The environment the operator's image runs it with (the ENV of operator/Dockerfile, kept equal by
tests/unit/test_process_env.py). The sandbox starts its operator processes with it too, so what bench/
measures is what runs in a cluster."""

from __future__ import annotations

PROCESS_ENV: dict[str, str] = {
    # glibc gives every thread that allocates an arena of its own; two keep the reconcile workers
    # from fragmenting memory.
    "MALLOC_ARENA_MAX": "2",
    # The default trust store as a file is parsed whole into every TLS context that loads it (aiohttp
    # makes one at import: ~2 MiB). The system CAs stay trusted through the hashed directory
    # (SSL_CERT_DIR, or OpenSSL's default), read one certificate at a time when one is needed; the file
    # is the cluster's own CA. The API server connection names its CA and loads nothing else.
    "SSL_CERT_FILE": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
}

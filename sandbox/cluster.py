"""A real local Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, controller-manager,
scheduler and kwok (fake kubelets), plus the sandbox's own helpers (EMQX simulator, volume provisioner).

Pod IPs come from a loopback range so that processes on this machine can listen on them and no
traffic ever leaves it. The API refuses loopback addresses in Endpoints/EndpointSlices, so the
endpoint controllers are switched off (Services keep their selectors; nothing routes through them).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import build

REPO_ROOT = Path(__file__).resolve().parent.parent
# Each sandbox takes its own /16 of 127/8 so that two sandboxes on one machine (a developer's and a
# test session's) never hand out the same pod IP. EMQX_SANDBOX_POD_CIDR pins one.
POD_CIDR_ENV = "EMQX_SANDBOX_POD_CIDR"
NODE_IP = "127.15.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # ClusterIPs are only allocated, never routed or contacted
NODE_COUNT = 3
STORAGE_CLASS = "sandbox-local"
ADMIN_USER = "sandbox-admin"

# EMQX pods: kwok only creates the "sandbox" (pod IP, host IP, start time) of a scheduled pod; the EMQX
# simulator is their kubelet from then on (container states, restarts, probes, phase, conditions).
EMQX_INSTANCE_KEY = '.metadata.labels["apps.emqx.io/instance"]'
EMQX_POD_STAGE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: emqx-pod-sandbox
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["apps.emqx.io/instance"]'
      operator: 'Exists'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '.status.podIP'
      operator: 'DoesNotExist'
  weight: 10000
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: PodReadyToStartContainers
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
        reason: ContainersNotReady
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
        reason: ContainersNotReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        imageID: ""
        ready: false
        started: false
        restartCount: 0
        state:
          waiting:
            reason: ContainerCreating
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Pending
      startTime: {{ $now | Quote }}
"""

# kwok's debugging resources the sandbox serves (CRDs from the kwok module, see build.KWOK_CRDS).
KWOK_CRDS = ("PortForward", "Logs")


def kwok_stages(default_stages: str) -> str:
    """kwok's default Stages with EMQX pods taken out of the ones that would run them (pod-ready,
    pod-complete), plus the EMQX pod Stage. pod-delete still removes deleted EMQX pods."""
    import yaml

    documents = [doc for doc in yaml.safe_load_all(default_stages) if doc]
    for stage in documents:
        if stage.get("kind") != "Stage" or (stage["spec"].get("resourceRef") or {}).get("kind") != "Pod":
            continue
        if stage["metadata"]["name"] in ("pod-ready", "pod-complete"):
            stage["spec"]["selector"]["matchExpressions"].append({"key": EMQX_INSTANCE_KEY, "operator": "DoesNotExist"})
    return yaml.safe_dump_all(documents, sort_keys=False) + "---\n" + EMQX_POD_STAGE


class SandboxError(SystemExit):
    """A one-line, user-facing failure (exit code 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"sandbox: {message}")


def state_dir() -> Path:
    return Path(os.environ.get("EMQX_SANDBOX_DIR") or REPO_ROOT / ".sandbox")


@dataclass
class Component:
    name: str
    pid: int
    log: str
    port: int | None = None
    # How it was started, so that restart_component() can start it again exactly so: the command,
    # the environment it added to this process's, and its working directory.
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    # Started again when it exits, as a kubelet restarts a control-plane static pod: kube-scheduler
    # exits by design when it finds its cache corrupted (a bind that succeeded while the API server
    # restarted, then the pod seen on another node), and KCM when it loses its informers' footing.
    supervised: bool = False


@dataclass
class SandboxState:
    directory: str
    api_port: int
    kubeconfig: str
    bin_dir: str
    sim_control_url: str = ""
    pod_cidr: str = ""
    components: list[Component] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path | None = None) -> SandboxState | None:
        path = (directory or state_dir()) / "state.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["components"] = [Component(**c) for c in raw.get("components", [])]
        return cls(**raw)

    def save(self) -> None:
        data = dict(self.__dict__)
        data["components"] = [c.__dict__ for c in self.components]
        Path(self.directory, "state.json").write_text(json.dumps(data, indent=2))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _require_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SandboxError(f"port 127.0.0.1:{port} for {what} is taken ({exc.strerror})") from None


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SandboxError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert and the service-account signing key."""
    if shutil.which("openssl") is None:
        raise SandboxError("openssl is not installed (apt-get install openssl)")
    pki.mkdir(parents=True, exist_ok=True)
    # keyUsage on the CA: Python >= 3.13 (VERIFY_X509_STRICT) refuses CAs without it.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=sandbox-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)
    (pki / "apiserver.ext").write_text(
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    # kwok serves the kubelet API (logs, port-forward) on the fake nodes' InternalIP; the apiserver checks it.
    (pki / "kubelet.ext").write_text(
        f"keyUsage=critical,digitalSignature,keyEncipherment\nsubjectAltName=IP:{NODE_IP}\nextendedKeyUsage=serverAuth\n"
    )
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", "apiserver.ext"),
        ("admin", f"/O=system:masters/CN={ADMIN_USER}", "client.ext"),
        ("kubelet", "/CN=kwok-kubelet", "kubelet.ext"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, pki: Path, api_port: int) -> None:
    import base64

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": f"https://127.0.0.1:{api_port}", "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": ADMIN_USER, "user": {
            "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": ADMIN_USER, "namespace": "default"}}],
        "current-context": "sandbox",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


class ControlPlane:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pki = directory / "pki"
        self.logs = directory / "logs"
        self.components: list[Component] = []

    def _spawn(self, name: str, argv: list[str], port: int | None = None, supervised: bool = False) -> None:
        log_path = self.logs / f"{name}.log"
        comp = Component(name, 0, str(log_path), port, argv=list(argv), cwd=str(self.dir), supervised=supervised)
        comp.pid = _launch(comp)
        self.components.append(comp)

    def _check_alive(self, name: str) -> None:
        comp = next(c for c in self.components if c.name == name)
        if not _pid_alive(comp.pid):
            tail = _tail(Path(comp.log))
            raise SandboxError(f"{name} exited during start-up; see {comp.log}{tail}")

    def _wait_http(self, name: str, url: str, timeout: float, context: ssl.SSLContext | None = None) -> None:
        comp = next(c for c in self.components if c.name == name)
        _poll_http(url, context, timeout, lambda: self._check_alive(name),
                   f"{name} not healthy at {url} after {timeout:.0f}s; see {comp.log}", interval=0.2)

    def start(self, bin_dir: Path, api_port: int | None = None, audit: bool = False) -> SandboxState:
        pod_cidr = os.environ.get(POD_CIDR_ENV) or f"127.{random.randint(16, 250)}.0.0/16"
        self.logs.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        etcd_port, etcd_peer = free_port(), free_port()
        api_port = api_port or free_port()
        _require_free(api_port, "kube-apiserver")
        kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port(NODE_IP)
        kubeconfig = self.dir / "kubeconfig"
        write_kubeconfig(kubeconfig, self.pki, api_port)
        state = SandboxState(str(self.dir), api_port, str(kubeconfig), str(bin_dir), pod_cidr=pod_cidr)

        self._spawn("etcd", [
            str(bin_dir / "etcd"), "--name=sandbox", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{etcd_peer}",
            "--listen-metrics-urls=", "--unsafe-no-fsync=true", "--auto-compaction-retention=1",
            "--quota-backend-bytes=2147483648", "--log-level=warn",
        ], etcd_port)
        state.components = self.components
        state.save()
        self._wait_http("etcd", f"http://127.0.0.1:{etcd_port}/health", 30)

        pki = self.pki
        self._spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            "--endpoint-reconciler-type=none", f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
            "--allow-privileged=true", "--profiling=false",
            # logs/port-forward go to kwok at the fake nodes' InternalIP, whose cert our CA signed.
            "--kubelet-preferred-address-types=InternalIP", f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            *(self._audit_flags() if audit else []),
        ], api_port)
        state.save()
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._wait_http("kube-apiserver", f"https://127.0.0.1:{api_port}/readyz", 120, ctx)

        self._spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
            # Endpoints may not hold loopback addresses: the endpoint controllers would fail in a loop.
            "--controllers=*,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--node-monitor-grace-period=60s", "--profiling=false",
            # As the scheduler below: client-go's default (20 requests/s, burst 30, per controller)
            # would let the StatefulSet controller alone take 2 minutes to start 500 clusters' pods.
            "--kube-api-qps=200", "--kube-api-burst=400",
        ], kcm_port, supervised=True)
        sched_config = self.dir / "scheduler.yaml"
        sched_config.write_text(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
            f"clientConnection: {{kubeconfig: {json.dumps(str(kubeconfig))}, qps: 200, burst: 400}}\n"
            "leaderElection: {leaderElect: false}\n"
        )
        self._spawn("kube-scheduler", [
            str(bin_dir / "kube-scheduler"), f"--config={sched_config}", "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}", "--profiling=false",
        ], sched_port, supervised=True)

        kwok_dir = (bin_dir / "kwok").resolve().parent
        for name in build.KWOK_FILES:
            if not (kwok_dir / name).exists():
                raise SandboxError(f"{name} missing in {kwok_dir}: run `python -m sandbox build`")
        stages = self.dir / "kwok-stages.yaml"
        stages.write_text(kwok_stages((kwok_dir / "kwok-default-stages.yaml").read_text()))
        # kwok reads PortForward and Logs objects only if their CRDs exist when it starts.
        _kubectl(state, "apply", "-f", str(kwok_dir / "kwok-crds.yaml"))
        _kubectl(state, "wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{kind}.kwok.x-k8s.io" for kind in ("portforwards", "logs")))
        self._spawn("kwok", [
            str(bin_dir / "kwok"), f"--kubeconfig={kubeconfig}", f"--config={stages}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={pod_cidr}", f"--node-ip={NODE_IP}", "--node-lease-duration-seconds=40",
            # The apiserver dials <node InternalIP>:<node port> for logs and port-forward.
            f"--server-address={NODE_IP}:{kwok_port}", f"--node-port={kwok_port}",
            f"--tls-cert-file={pki / 'kubelet.crt'}", f"--tls-private-key-file={pki / 'kubelet.key'}",
            f"--enable-crds={','.join(KWOK_CRDS)}",
        ], kwok_port)
        state.save()
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            self._wait_http(name, f"https://127.0.0.1:{port}/healthz", 60, _insecure_context())
        self._wait_http("kwok", f"http://{NODE_IP}:{kwok_port}/healthz", 60)
        return state


    def _audit_flags(self) -> list[str]:
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.logs / AUDIT_LOG}", "--audit-log-format=json",
                "--audit-log-maxsize=0", "--audit-log-mode=blocking"]


# The audit log (`up(audit=True)`): one JSON line per write request, with its user and object, when
# the response was sent. Benchmarks read it to count what a given identity wrote, and when.
AUDIT_LOG = "audit.log"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
"""


# A supervised component runs under this loop (the session's leader, so that stopping the component's
# process group stops the loop and the component together): it is started again 1 s after it exits.
SUPERVISOR = ('while :; do "$@"; code=$?; echo "sandbox: $0 exited with code $code; starting it again in 1 s"; '
              'sleep 1; done')


def _launch(comp: Component) -> int:
    """Start a component's process (in a session of its own, output appended to its log)."""
    env = {**os.environ, **comp.env} if comp.env else None
    argv = ["/bin/sh", "-c", SUPERVISOR, comp.name, *comp.argv] if comp.supervised else comp.argv
    with open(comp.log, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=comp.cwd,
        )
    return proc.pid


def _insecure_context() -> ssl.SSLContext:
    # KCM and scheduler serve /healthz with a self-signed cert generated at start; only liveness is read.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(text)) if text else ""


def stop_components(components: list[Component], timeout: float = 10,
                    sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop components (each its whole process group) with `sig`, in reverse order of start; SIGKILL
    for those still alive after `timeout` seconds, and wait until they are gone."""
    for comp in reversed(components):
        if _pid_alive(comp.pid):
            try:
                os.killpg(comp.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + timeout
    for comp in components:
        while _pid_alive(comp.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(comp.pid):
            try:
                os.killpg(comp.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            while _pid_alive(comp.pid):
                time.sleep(0.05)


def _kubectl(state: SandboxState, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(Path(state.bin_dir) / "kubectl"), f"--kubeconfig={state.kubeconfig}", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise SandboxError(f"kubectl {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


NODE_TEMPLATE = """\
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations: {{node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}}
  labels: {{kubernetes.io/hostname: {name}, kubernetes.io/os: linux, kubernetes.io/arch: amd64,
            type: kwok, topology.kubernetes.io/zone: zone-{zone}}}
spec: {{}}
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
---
"""

STORAGE_CLASS_MANIFEST = f"""\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {STORAGE_CLASS}
  annotations: {{storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: sandbox.local/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
"""


def seed_cluster(state: SandboxState) -> None:
    nodes = "".join(NODE_TEMPLATE.format(name=f"kwok-node-{i}", zone=i) for i in range(NODE_COUNT))
    _kubectl(state, "apply", "-f", "-", stdin=nodes + STORAGE_CLASS_MANIFEST)
    _kubectl(state, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    # The default ServiceAccount appears shortly after KCM starts; pods cannot be created before.
    deadline = time.monotonic() + 60
    while True:
        try:
            _kubectl(state, "get", "serviceaccount", "default", "-n", "default")
            return
        except SandboxError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_helper(state: SandboxState, name: str, module: str, *args: str) -> Component:
    log_path = Path(state.directory) / "logs" / f"{name}.log"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    comp = Component(name, 0, str(log_path), argv=[sys.executable, "-m", module, "--kubeconfig", state.kubeconfig,
                                                   *args], env=env)
    comp.pid = _launch(comp)
    state.components.append(comp)
    state.save()
    return comp


def up(
    with_simulator: bool = True,
    with_provisioner: bool = True,
    directory: Path | None = None,
    probe_timing: str | None = None,
    audit: bool = False,
    boot_seconds: float | None = None,
) -> SandboxState:
    """Start a sandbox (or return the running one). `probe_timing` is the simulated kubelet's timing
    (honest|fast); None: $EMQX_SIM_PROBE_TIMING, else honest. `audit`: the API server logs every write
    to logs/audit.log (AUDIT_POLICY). `boot_seconds`: how long a simulated EMQX node takes from its
    container's start to answering, in honest seconds (fast timing: a tenth); None:
    $EMQX_SIM_BOOT_SECONDS, else the simulator's default (5)."""
    directory = directory or state_dir()
    existing = SandboxState.load(directory)
    if existing is not None:
        dead = [c.name for c in existing.components if not _pid_alive(c.pid)]
        if not dead:
            return existing
        raise SandboxError(
            f"a sandbox in {directory} has crashed components ({', '.join(dead)}); "
            "run `python -m sandbox down` first"
        )
    bin_dir = build.require_binaries(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                      "kwok", "kubectl"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    plane = ControlPlane(directory)
    try:
        state = plane.start(bin_dir, audit=audit)
        seed_cluster(state)
        if with_provisioner:
            start_helper(state, "provisioner", "sandbox.provisioner", "--root", str(directory / "volumes"))
        if with_simulator:
            port = free_port()
            state.sim_control_url = f"http://127.0.0.1:{port}"
            timing = ["--probe-timing", probe_timing] if probe_timing else []
            if boot_seconds is not None:
                timing += ["--boot-seconds", repr(float(boot_seconds))]
            start_helper(state, "emqx-simulator", "sandbox.emqxsim", "--control-addr", f"127.0.0.1:{port}",
                         "--pod-logs", str(directory / "podlogs"), "--state-file", str(directory / SIM_STATE_FILE),
                         *timing)
            _wait_simulator(state)
        state.save()
    except BaseException:
        stop_components(plane.components)
        raise
    return state


SIM_STATE_FILE = "emqxsim-data.pickle"  # the simulated nodes' data directories, kept across its restarts


def _wait_simulator(state: SandboxState, timeout: float = 30) -> None:
    comp = next(c for c in state.components if c.name == "emqx-simulator")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(comp.pid):
            raise SandboxError(f"emqx-simulator exited during start-up; see {comp.log}{_tail(Path(comp.log))}")
        try:
            with urllib.request.urlopen(state.sim_control_url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SandboxError(f"emqx-simulator did not answer at {state.sim_control_url}; see {comp.log}")


@contextlib.contextmanager
def reused_or_private(prefix: str, **up_options: Any) -> Iterator[SandboxState]:
    """The sandbox $EMQX_SANDBOX_DIR points at (left running), or a private one stopped afterwards.
    Shared by the test session and the benchmarks."""
    reuse = os.environ.get("EMQX_SANDBOX_DIR")
    if reuse:
        state = SandboxState.load(Path(reuse))
        if state is None:
            raise SandboxError(f"EMQX_SANDBOX_DIR={reuse} holds no running sandbox (python -m sandbox up)")
        yield state
        return
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield up(directory=directory, **up_options)
    finally:
        down(directory)


def down(directory: Path | None = None) -> bool:
    directory = directory or state_dir()
    state = SandboxState.load(directory)
    if state is None:
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        return False
    stop_components(state.components)
    shutil.rmtree(directory, ignore_errors=True)
    return True


def status() -> list[tuple[str, str, str]]:
    state = SandboxState.load()
    if state is None:
        return []
    return [(c.name, "running" if _pid_alive(c.pid) else "DEAD", c.log) for c in state.components]


# ---------------------------------------------------------------------------------------------- faults


def stop_component(state: SandboxState, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop one component (its whole process group) with `sig`, SIGKILL after `timeout` seconds."""
    stop_components([_component(state, name)], timeout, sig)


def start_component(state: SandboxState, name: str, timeout: float = 120) -> Component:
    """Start a stopped component again with the command it was first started with (the same ports,
    data directories and flags), and wait until it is healthy."""
    comp = _component(state, name)
    if _pid_alive(comp.pid):
        raise SandboxError(f"{name} is still running (pid {comp.pid})")
    if not comp.argv:
        raise SandboxError(f"{name} was started before the sandbox recorded commands: run `python -m sandbox down`")
    comp.pid = _launch(comp)
    state.save()
    wait_healthy(state, name, timeout)
    return comp


def restart_component(state: SandboxState, name: str, downtime: float = 0.0,
                      sig: signal.Signals = signal.SIGTERM, timeout: float = 120) -> Component:
    """Restart one component as an outage would: etcd keeps its data directory, kube-apiserver its
    flags and port, the EMQX simulator its control port and the nodes' data directories (every
    simulated node reboots: the new simulator boots every pod's container again). `downtime`: seconds
    between the stop and the start. Returns the component with its new pid."""
    stop_component(state, name, sig)
    if downtime > 0:
        time.sleep(downtime)
    return start_component(state, name, timeout)


def _component(state: SandboxState, name: str) -> Component:
    comp = next((c for c in state.components if c.name == name), None)
    if comp is None:
        raise SandboxError(f"no component {name!r} in the sandbox at {state.directory}")
    return comp


def wait_healthy(state: SandboxState, name: str, timeout: float = 120) -> None:
    """Wait until a component answers its health endpoint (or, without one, is alive)."""
    comp = _component(state, name)
    pki = Path(state.directory) / "pki"
    context: ssl.SSLContext | None = None
    if name == "etcd":
        url = f"http://127.0.0.1:{comp.port}/health"
    elif name == "kube-apiserver":
        url, context = f"https://127.0.0.1:{comp.port}/readyz", ssl.create_default_context(cafile=str(pki / "ca.crt"))
    elif name in ("kube-controller-manager", "kube-scheduler"):
        url, context = f"https://127.0.0.1:{comp.port}/healthz", _insecure_context()
    elif name == "kwok":
        url = f"http://{NODE_IP}:{comp.port}/healthz"
    elif name == "emqx-simulator":
        url = state.sim_control_url + "/healthz"
    else:
        url = ""
    def alive() -> None:
        if not _pid_alive(comp.pid):
            raise SandboxError(f"{name} exited after a restart; see {comp.log}{_tail(Path(comp.log))}")

    if not url:
        alive()
        return
    _poll_http(url, context, timeout, alive, f"{name} not healthy at {url} {timeout:.0f}s after a restart; see {comp.log}")


def _poll_http(url: str, context: ssl.SSLContext | None, timeout: float, check: Callable[[], None], failure: str,
               interval: float = 0.1) -> None:
    """Until `url` answers 200: `check()` first each round (it raises when the process is gone), then
    SandboxError(`failure`) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SandboxError(failure)
        time.sleep(interval)


def client_kubeconfig(state: SandboxState, user: str, path: Path, groups: tuple[str, ...] = ("system:masters",),
                      server: str | None = None) -> Path:
    """A kubeconfig for a user of its own (a client certificate the sandbox CA signs, CN=`user`,
    O=each group), e.g. to tell one process's requests apart in the audit log; `server` replaces the
    API server's URL (a proxy in front of it). The key stays in the file (0600)."""
    import base64

    pki = Path(state.directory) / "pki"
    with tempfile.TemporaryDirectory(prefix="sandbox-user-") as scratch:
        work = Path(scratch)
        shutil.copy(pki / "client.ext", work / "client.ext")
        subject = "".join(f"/O={group}" for group in groups) + f"/CN={user}"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", "user.key", "-out", "user.csr",
                 cwd=work)
        _openssl("x509", "-req", "-in", "user.csr", "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
                 "-CAcreateserial", "-CAserial", str(work / "ca.srl"), "-days", "30", "-extfile", "client.ext",
                 "-out", "user.crt", cwd=work)
        cert, key = (work / "user.crt").read_bytes(), (work / "user.key").read_bytes()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {
            "server": server or f"https://127.0.0.1:{state.api_port}",
            "certificate-authority-data": base64.b64encode((pki / "ca.crt").read_bytes()).decode()}}],
        "users": [{"name": user, "user": {"client-certificate-data": base64.b64encode(cert).decode(),
                                          "client-key-data": base64.b64encode(key).decode()}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user, "namespace": "default"}}],
        "current-context": "sandbox",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path

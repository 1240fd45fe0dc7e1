"""The whole stack as processes: `tidydesk up`, mail over SMTP, the API, Ctrl-C, restart."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, mail
from tidydesk.cli import units
from tidydesk.common.settings import Settings

pytestmark = pytest.mark.e2e
TIDYDESK = [sys.executable, "-m", "tidydesk.cli"]


class Up:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.env = env
        self.log = home / "up.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*TIDYDESK, "up"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.api = f"http://127.0.0.1:{env['TIDYDESK_HTTP_PORT']}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                self.get("/healthz")
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("stack did not come up:\n" + self.log.read_text()[-3000:])
        self.mint_token()

    def mint_token(self) -> None:
        """An admin token for the test's requests and the CLI (TIDYDESK_API_TOKEN)."""
        nats_url = self.env.get("TIDYDESK_NATS_URL", "")
        deadline = time.monotonic() + 30
        while not nats_url and time.monotonic() < deadline:  # embedded: `up` prints it
            found = re.search(r"^\s+NATS\s+(\S+)", self.log.read_text(), re.M)
            nats_url = found.group(1) if found else ""
            time.sleep(0.2)
        # (= `tidydesk tokens create --scope admin`)
        out = subprocess.run([sys.executable, "-m", "tidydesk.queue.tokens", "create",
                              "--scope", "admin", "--name", "e2e"],
                             env={**self.env, "TIDYDESK_NATS_URL": nats_url},
                             capture_output=True, text=True, timeout=30, check=True).stdout
        self.token = out.split()[-1]
        assert self.token.startswith("tdk_"), out
        self.env["TIDYDESK_API_TOKEN"] = self.token

    def get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if hasattr(self, "token") else {}
        req = urllib.request.Request(self.api + path, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: bytes) -> Any:
        req = urllib.request.Request(self.api + path, data=body, method="POST", headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def run(self, *args: str) -> str:
        done = subprocess.run([*TIDYDESK, *args], env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def wait(self, path: str, check: Any, within: float = 20) -> Any:
        deadline = time.monotonic() + within
        while True:
            value = self.get(path)
            if check(value) or time.monotonic() > deadline:
                assert check(value), value
                return value
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


@pytest.fixture
def env(tmp_path: Path, ns: str) -> Iterator[dict[str, str]]:
    yield {
        **os.environ,
        "TIDYDESK_HOME": str(tmp_path / "home"),
        "TIDYDESK_NAMESPACE": ns,
        "TIDYDESK_SMTP_PORT": str(free_port()),
        "TIDYDESK_HTTP_PORT": str(free_port()),
        "TIDYDESK_HEALTH_PORT": "0",  # `tidydesk up` picks free ones
        "TIDYDESK_LOG_FORMAT": "json",
    }


@pytest.fixture
def embedded_env(env: dict[str, str]) -> dict[str, str]:
    """`tidydesk up` starting its own nats-server and PostgreSQL under TIDYDESK_HOME."""
    return {k: v for k, v in env.items()
            if k not in ("TIDYDESK_NATS_URL", "TIDYDESK_DATABASE_URL")}


def test_mail_reply_queue_solve_reopen_restart(tmp_path: Path, env: dict[str, str]) -> None:
    first, reply, after = (tmp_path / n for n in ("first.eml", "reply.eml", "after.eml"))
    first.write_bytes(mail("e2e-1@example.com", "The app crashes on start."))
    reply.write_bytes(mail("e2e-2@example.com", "Here is the log.",
                           in_reply_to="e2e-1@example.com"))
    after.write_bytes(mail("e2e-3@example.com", "It crashes again today.",
                           in_reply_to="e2e-2@example.com"))
    up = Up(tmp_path, env)
    try:
        up.run("send", str(first))
        up.run("send", str(reply))
        (ticket,) = up.wait("/tickets", lambda v: v["tickets"]
                            and v["tickets"][0]["message_count"] == 2)["tickets"]
        assert ticket["status"] == "open" and ticket["requester"] == "alice@example.com"
        detail = up.get(f"/tickets/{ticket['id']}")
        assert [m["message_id"] for m in detail["messages"]] == [
            "e2e-1@example.com", "e2e-2@example.com"]
        table = up.run("queue")
        assert re.search(rf"^{ticket['number']}\s+open\s+2\s+alice@example.com", table, re.M)

        up.post(f"/tickets/{ticket['id']}/solve", b'{"agent": "kim"}')
        up.wait("/tickets?status=solved", lambda v: len(v["tickets"]) == 1)
        up.run("send", str(after))  # a reply to a solved ticket: always-reopen reopens it
        up.wait(f"/tickets/{ticket['id']}", lambda v: v["status"] == "open"
                and v["message_count"] == 3)
        events = up.get(f"/tickets/{ticket['id']}/events")["events"]
        assert [e["type"].removeprefix("tidydesk.") for e in events] == [
            "ticket.opened", "message.threaded", "message.threaded", "ticket.solved",
            "message.threaded", "ticket.reopened"]
        urls = dict(re.findall(r"^\s+(NATS|Postgres)\s+(\S+)", up.log.read_text(), re.M))
    finally:
        assert up.stop() == 0, up.log.read_text()[-3000:]

    up = Up(tmp_path, env)  # a restart keeps every ticket
    try:
        again = up.wait("/tickets?status=all", lambda v: len(v["tickets"]) == 1)["tickets"]
        assert again[0]["id"] == ticket["id"] and again[0]["message_count"] == 3
        urls = dict(re.findall(r"^\s+(NATS|Postgres)\s+(\S+)", up.log.read_text(), re.M))
        replay_env = {**env, "TIDYDESK_NATS_URL": urls["NATS"],
                      "TIDYDESK_DATABASE_URL": urls["Postgres"]}
        out = subprocess.run([*TIDYDESK, "replay"], env=replay_env, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        assert "1 tickets rebuilt" in out
        assert up.get(f"/tickets/{ticket['id']}")["message_count"] == 3
    finally:
        assert up.stop() == 0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_embedded_nats_killed_comes_back_on_its_port(tmp_path: Path,
                                                     embedded_env: dict[str, str]) -> None:
    home = Path(embedded_env["TIDYDESK_HOME"])
    first = tmp_path / "first.eml"
    first.write_bytes(mail("kill-1@example.com", "Still there after the crash?"))
    up = Up(tmp_path, embedded_env)
    try:
        deadline = time.monotonic() + 30
        while "tidydesk: ready — " not in up.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = up.log.read_text()
        assert text.count("tidydesk: ready — ") == 1, text[-3000:]
        nats_url = re.search(r"^\s+NATS\s+(\S+) \(embedded\)", text, re.M)
        assert nats_url, text[-3000:]
        readyz = re.findall(r"(http://\S+/readyz)", text)
        assert len(readyz) == len(units(Settings.from_env(embedded_env)))  # every instance

        old_pid = int((home / "nats.pid").read_text())
        os.kill(old_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                "embedded NATS restarted" in up.log.read_text()
                and all(_ready(u) for u in readyz)):
            time.sleep(0.3)
        text = up.log.read_text()
        assert "tidydesk: embedded NATS died; restarting" in text, text[-3000:]
        assert all(_ready(u) for u in readyz), text[-3000:]
        assert int((home / "nats.pid").read_text()) != old_pid
        port = nats_url.group(1).rpartition(":")[2]
        listening = re.findall(r"Listening for client connections on 127.0.0.1:(\d+)",
                               (home / "nats.log").read_text())
        assert listening == [port, port]  # the services' URL stayed right

        up.run("send", str(first))
        up.wait("/tickets", lambda v: len(v["tickets"]) == 1)
    finally:
        assert up.stop() == 0, up.log.read_text()[-3000:]
    assert up.log.read_text().count("tidydesk: ready — ") == 1


def test_up_with_a_taken_port_names_the_setting(embedded_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(embedded_env["TIDYDESK_SMTP_PORT"])))
        taken.listen(1)
        done = subprocess.run([*TIDYDESK, "up"], env=embedded_env, capture_output=True,
                              text=True, timeout=30, check=False)
    port = embedded_env["TIDYDESK_SMTP_PORT"]
    assert done.returncode != 0
    assert done.stderr.strip() == (f"tidydesk: TIDYDESK_SMTP_PORT={port} is in use (another "
                                   "tidydesk?); set TIDYDESK_SMTP_PORT to a free port")
    assert not Path(embedded_env["TIDYDESK_HOME"], "nats").exists()  # nothing was started

"""`tidydesk up` with TIDYDESK_WORKERS=2: ingest, threading and policy twice, one SMTP port."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, mail
from tests.e2e.test_stack import Up

pytestmark = pytest.mark.e2e
_HEALTH = re.compile(r"^\s+(?:Health)?\s+(\S+)\s+(http://\S+)/healthz\s", re.M)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def _intake_count(metrics: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in metrics.splitlines()
               if line.startswith("tidydesk_intake_messages_total{"))


def test_two_workers_share_the_smtp_port_and_restart_one_by_one(tmp_path: Path,
                                                                ns: str) -> None:
    env = {**os.environ, "TIDYDESK_HOME": str(tmp_path / "home"), "TIDYDESK_NAMESPACE": ns,
           "TIDYDESK_SMTP_PORT": str(free_port()), "TIDYDESK_HTTP_PORT": str(free_port()),
           "TIDYDESK_HEALTH_PORT": "0", "TIDYDESK_LOG_FORMAT": "json",
           "TIDYDESK_WORKERS": "2"}  # as `tidydesk up --workers 2`
    up = Up(tmp_path, env)
    try:
        deadline = time.monotonic() + 60
        while "tidydesk: ready — " not in up.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = up.log.read_text()
        assert "tidydesk: ready — " in text, text[-3000:]
        health = dict(_HEALTH.findall(text))
        assert list(health) == ["ingest-1", "ingest-2", "threading-1", "threading-2",
                                "policy-1", "policy-2", "notify", "queue", "desk"], text[:2000]
        assert len(set(health.values())) == len(health)

        port = int(env["TIDYDESK_SMTP_PORT"])
        for i in range(15):  # a connection each: the kernel spreads them over both listeners
            for raw in (mail(f"w{i}@example.com", f"Question {i}", subject=f"Case {i}",
                             sender=f"c{i}@example.com"),
                        mail(f"w{i}-re@example.com", "More detail", subject=f"Re: Case {i}",
                             sender=f"c{i}@example.com", in_reply_to=f"w{i}@example.com")):
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                    smtp.sendmail(f"c{i}@example.com", ["support@acme.example"], raw)
        tickets = up.wait("/tickets?status=all", lambda v: len(v["tickets"]) == 15 and all(
            t["message_count"] == 2 for t in v["tickets"]), within=60)["tickets"]
        # two threading instances: a reply may be threaded before its parent, and then the
        # reply opens the ticket (the parent joins it out of order) under its own subject
        assert sorted(t["subject"].removeprefix("Re: ") for t in tickets) == sorted(
            f"Case {i}" for i in range(15))
        taken = [_intake_count(_get(f"{health[n]}/metrics").decode())
                 for n in ("ingest-1", "ingest-2")]
        assert min(taken) > 0 and sum(taken) == 30, taken

        pid = json.loads(_get(f"{health['threading-2']}/healthz"))["pid"]
        os.kill(pid, signal.SIGKILL)  # only that instance restarts, on its own port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                answer = json.loads(_get(f"{health['threading-2']}/readyz"))
                if answer["status"] == "ready":
                    break
            except OSError:
                pass
            time.sleep(0.3)
        text = up.log.read_text()
        assert f"tidydesk: threading-2 exited with -{signal.SIGKILL}" in text, text[-3000:]
        assert json.loads(_get(f"{health['threading-2']}/healthz"))["pid"] != pid
        assert "threading-1 exited" not in text
        env_out = up.run("env")
        assert all(f"{n:<11} {u}/readyz  ready" in env_out for n, u in health.items()), env_out
    finally:
        assert up.stop() == 0, up.log.read_text()[-3000:]

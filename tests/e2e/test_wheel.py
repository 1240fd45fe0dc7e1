"""The built wheel, installed into a fresh venv outside the repository, starts and works,
run from a directory that has an application's own `services` package."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MAIL = b"""From: Customer <c@customer.example>\r
To: support@acme.example\r
Subject: Printer broken\r
Message-ID: <wheel-1@customer.example>\r
\r
The printer in room 4 shows E13.\r
"""


def _run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_wheel_installs_and_runs_beside_an_applications_own_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDYDESK_", "VIRTUAL_ENV"))}
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist",
         ROOT, cwd=tmp_path, env=env)
    (wheel,) = (tmp_path / "dist").glob("tidydesk-*.whl")
    _run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path, env=env)
    bin_ = tmp_path / "venv" / "bin"
    _run(bin_ / "pip", "install", "-q", wheel, cwd=tmp_path, env=env)

    app = tmp_path / "app"  # an application with a `services` package of its own
    (app / "services").mkdir(parents=True)
    (app / "services" / "__init__.py").write_text("OWNER = 'the application'\n")
    both = _run(bin_ / "python", "-c", "import services, tidydesk.cli, tidydesk.common.db as d;"
                " print(services.OWNER, d.MIGRATIONS.is_dir())", cwd=app, env=env)
    assert both.stdout.split() == ["the", "application", "True"]
    version = _run(bin_ / "tidydesk", "--version", cwd=app, env=env).stdout
    assert re.fullmatch(r"tidydesk \d+\.\d+\.\d+\S*\n", version)

    home = tmp_path / "home"
    stack = {**env, "TIDYDESK_HOME": str(home), "TIDYDESK_SMTP_PORT": str(free_port()),
             "TIDYDESK_HTTP_PORT": str(free_port()), "TIDYDESK_HEALTH_PORT": "0"}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([bin_ / "tidydesk", "up"], cwd=app, env=stack, stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while "tidydesk: ready" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        nats_url = re.search(r"^\s+NATS\s+(\S+)", log.read_text(), re.M)
        assert nats_url, log.read_text()
        (app / "mail.eml").write_bytes(MAIL)
        _run(bin_ / "tidydesk", "send", "mail.eml", cwd=app, env=stack, timeout=60)
        token = _run(bin_ / "tidydesk", "tokens", "create", "--scope", "admin", cwd=app,
                     env={**stack, "TIDYDESK_NATS_URL": nats_url.group(1)},
                     timeout=60).stdout.split()[-1]
        queued = ""
        while "Printer broken" not in queued:
            assert time.monotonic() < deadline, queued + log.read_text()[-3000:]
            time.sleep(0.5)
            queued = subprocess.run([bin_ / "tidydesk", "queue"], cwd=app, capture_output=True,
                                    text=True, timeout=30, check=False,
                                    env={**stack, "TIDYDESK_API_TOKEN": token}).stdout
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        shutil.rmtree(home, ignore_errors=True)
    assert up.returncode == 0, log.read_text()[-3000:]

"""`tidydesk env`, port checks, restart backoff, disk-full retries, client timeouts."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidydesk import cli
from tidydesk.common import health
from tidydesk.common.embedded import out_of_space
from tidydesk.common.settings import SERVICES, SETTINGS, Settings, redact


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something listens on but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_env_lines_say_set_or_default_and_hide_secrets() -> None:
    lines = cli.env_lines({
        "TIDYDESK_SMTP_PORT": "2600", "TIDYDESK_WEBHOOK_SECRET": "s3cret",
        "TIDYDESK_SMTP_AUTH": "kim:pw1,bob:pw2", "TIDYDESK_TYPO": "1",
        "TIDYDESK_DATABASE_URL": "postgresql://app:hunter2@db/x?password=also",
    })
    by_name = {line.split("=", 1)[0]: line for line in lines if not line.startswith("#")}
    assert set(by_name) == set(SETTINGS)
    assert by_name["TIDYDESK_SMTP_PORT"].startswith("TIDYDESK_SMTP_PORT=2600 ")
    assert by_name["TIDYDESK_SMTP_PORT"].endswith("# set")
    assert by_name["TIDYDESK_HTTP_PORT"].endswith("# default")
    assert "TIDYDESK_HTTP_PORT=8080 " in by_name["TIDYDESK_HTTP_PORT"]
    assert "TIDYDESK_WEBHOOK_SECRET='***'" in by_name["TIDYDESK_WEBHOOK_SECRET"]
    assert by_name["TIDYDESK_WEBHOOK_SECRET"].endswith("# set, hidden")
    assert "'kim:***,bob:***'" in by_name["TIDYDESK_SMTP_AUTH"]
    text = "\n".join(lines)
    assert "s3cret" not in text and "pw1" not in text and "hunter2" not in text
    assert "also" not in text
    assert "# TIDYDESK_TYPO: not a tidydesk setting" in text


def test_redact_leaves_plain_values() -> None:
    assert redact("TIDYDESK_NATS_URL", "nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert redact("TIDYDESK_NATS_URL", "nats://tok@h:4222") == "nats://***@h:4222"
    assert redact("TIDYDESK_IMAP_URLS", "imaps://me:pw@mail/INBOX") == "imaps://me:***@mail/INBOX"
    assert redact("TIDYDESK_WEBHOOK_SECRET", "") == ""


def test_taken_port_names_the_setting(listening: int) -> None:
    settings = Settings.from_env({"TIDYDESK_SMTP_PORT": str(listening),
                                  "TIDYDESK_HEALTH_PORT": "0"})
    with pytest.raises(health.PortInUse) as caught:
        health.check_ports(health.ports(settings, SERVICES))
    assert str(caught.value) == (f"TIDYDESK_SMTP_PORT={listening} is in use (another "
                                 "tidydesk?); set TIDYDESK_SMTP_PORT to a free port")


def test_taken_health_port_says_which_service(listening: int) -> None:
    settings = Settings.from_env({"TIDYDESK_HEALTH_PORT": str(listening - 2)})
    assert settings.health_port_of("policy") == listening
    with pytest.raises(health.PortInUse, match=rf"TIDYDESK_HEALTH_PORT={listening - 2} "
                       rf"\(\+2 = {listening}, policy\) is in use"):
        health.check_ports(health.ports(settings, ("policy",)))


def test_up_refuses_to_start_on_a_taken_port(listening: int, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIDYDESK_HTTP_PORT", str(listening))
    monkeypatch.setenv("TIDYDESK_HEALTH_PORT", "0")
    monkeypatch.setenv("TIDYDESK_SMTP_PORT", "0")
    assert cli.main(["up"]) == 2
    assert capsys.readouterr().err == (f"tidydesk: TIDYDESK_HTTP_PORT={listening} is in use "
                                       "(another tidydesk?); set TIDYDESK_HTTP_PORT to a free "
                                       "port\n")


def test_health_ports_are_distinct_when_chosen_freely() -> None:
    one = {"TIDYDESK_WORKERS": "1"}
    ports = cli.health_ports(Settings.from_env({**one, "TIDYDESK_HEALTH_PORT": "0"}))
    assert list(ports) == list(SERVICES) and len(set(ports.values())) == len(SERVICES)
    fixed = cli.health_ports(Settings.from_env({**one, "TIDYDESK_HEALTH_PORT": "9100"}))
    assert list(fixed.values()) == [9100, 9101, 9102, 9103, 9104, 9105]
    free = cli.health_ports(Settings.from_env({"TIDYDESK_WORKERS": "3",
                                               "TIDYDESK_HEALTH_PORT": "0"}))
    assert len(set(free.values())) == len(free) == 3 * 3 + 3


def test_workers_run_each_cpu_bound_service_n_times_on_ports_of_their_own() -> None:
    settings = Settings.from_env({"TIDYDESK_WORKERS": "2", "TIDYDESK_HEALTH_PORT": "9100"})
    assert cli.health_ports(settings) == {
        "ingest-1": 9100, "ingest-2": 9106, "threading-1": 9101, "threading-2": 9107,
        "policy-1": 9102, "policy-2": 9108, "notify": 9103, "queue": 9104, "desk": 9105}
    assert [(u.service, u.instance) for u in cli.units(settings)][:2] == [
        ("ingest", 0), ("ingest", 1)]
    # before anything starts every port is checked; one instance leaves out the SMTP port
    # its siblings share (SO_REUSEPORT)
    everything = [what for what, _, _ in health.ports(settings, SERVICES, every=True)]
    assert everything[:2] == ["TIDYDESK_SMTP_PORT=2525", "TIDYDESK_HTTP_PORT=8080"]
    assert "TIDYDESK_HEALTH_PORT=9100 (+7 = 9107, threading instance 2)" in everything
    assert len(everything) == 2 + 9
    ingest = [what for what, _, _ in health.ports(settings, ("ingest",))]
    assert ingest == ["TIDYDESK_HEALTH_PORT=9100"]
    alone = Settings.from_env({"TIDYDESK_HEALTH_PORT": "9100"})  # not told it has siblings
    assert [w for w, _, _ in health.ports(alone, ("ingest",))] == [
        "TIDYDESK_SMTP_PORT=2525", "TIDYDESK_HEALTH_PORT=9100"]


def test_up_refuses_fewer_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--workers", "0"]) == 2
    assert capsys.readouterr().err == "tidydesk: --workers must be at least 1\n"


def test_backoff_doubles_caps_and_starts_over_after_a_healthy_run() -> None:
    b = cli.Backoff(first=0.5, cap=4.0, healthy=30.0)
    assert [b.after(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.after(31.0) == 0.5
    assert b.after(1.0) == 1.0


class FlakyServer:
    name = "NATS"

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures

    def start(self) -> str:
        if self.failures:
            raise self.failures.pop(0)
        return "nats://127.0.0.1:1"

    def alive(self) -> bool:
        return True


def test_start_keeps_retrying_while_the_disk_is_full(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    server = FlakyServer([OSError(errno.ENOSPC, "No space left on device"),
                          RuntimeError("nats-server exited: … no space left on device")])
    assert cli.start_embedded(server, tmp_path, slept.append) == "nats://127.0.0.1:1"
    assert slept == [1.0, 2.0]
    err = capsys.readouterr().err
    assert err.count("tidydesk: disk full: embedded NATS cannot start") == 2


def test_start_gives_up_on_other_errors(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="bad flag"):
        cli.start_embedded(FlakyServer([RuntimeError("bad flag")]), tmp_path,
                           lambda _: None)
    assert out_of_space(OSError(errno.ENOSPC, "x"))
    assert not out_of_space(OSError(errno.EACCES, "x"))


@pytest.mark.parametrize("command", [["queue"], ["merge", "1", "2"], ["send", "MAIL"]])
def test_commands_give_up_on_a_silent_stack(
        command: list[str], listening: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n")
    monkeypatch.setenv("TIDYDESK_HTTP_PORT", str(listening))
    monkeypatch.setenv("TIDYDESK_SMTP_PORT", str(listening))
    began = time.monotonic()
    argv = [str(mail) if a == "MAIL" else a for a in command]
    assert cli.main([*argv, "--timeout", "0.5"]) == 1
    assert time.monotonic() - began < 3
    err = capsys.readouterr().err
    assert f"127.0.0.1:{listening} gave no answer within 0.5s" in err
    assert "--timeout SECONDS" in err


def test_commands_say_when_nothing_listens(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TIDYDESK_HTTP_PORT", str(port))
    assert cli.main(["queue", "--timeout", "2"]) == 1
    assert "HTTP API not reachable at" in capsys.readouterr().err


def test_env_without_a_running_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TIDYDESK_HOME", str(tmp_path))
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"TIDYDESK_HOME={tmp_path}" in out and "# set" in out
    assert f"# no running `tidydesk up` under {tmp_path}" in out

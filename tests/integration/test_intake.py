"""Intake from the outside: SMTP policy/TLS/AUTH, Postmark JSON, mbox/Maildir import, IMAP.

Real NATS and PostgreSQL (the conftest fixtures), real sockets, and for IMAP a real
Dovecot run unprivileged in a temp dir (skipped with a reason when it is not installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import mailbox
import os
import pwd
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import Stack, eventually, free_port, mail
from tidydesk.common.embedded import stop_process
from tidydesk.common.events import MessageReceived, MessageRejected
from tidydesk.common.store import digest_key
from tidydesk.ingest.imap import Checkpoint, parse_url, poll_forever
from tidydesk.ingest.imports import checkpoint_file, import_path
from tidydesk.ingest.intake import Intake
from tidydesk.ingest.parse import parse
from tidydesk.ingest.providers import postmark_to_mime
from tidydesk.ingest.smtp import serve

DATA = Path(__file__).resolve().parents[1] / "data" / "intake"


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost / 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed (needed to make a test certificate)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out",
         str(cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def _send(port: int, rcpts: list[str], raw: bytes, **kw: Any) -> dict[str, Any]:
    """Send over SMTP on loopback; kw: cafile (STARTTLS), login=(user, password)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        if "cafile" in kw:
            smtp.starttls(context=ssl.create_default_context(cafile=kw["cafile"]))
        if "login" in kw:
            smtp.login(*kw["login"])
        refused: dict[str, Any] = smtp.sendmail("alice@example.com", rcpts, raw)
        return refused


async def _mailboxes(stack: Stack) -> list[str]:
    return sorted(str(t["mailbox"]) for t in await stack.tickets())


# --- SMTP ----------------------------------------------------------------------------------

async def test_smtp_refuses_foreign_recipients_and_keeps_plus_addresses(stack: Stack) -> None:
    port = free_port()
    server = await serve(stack.intake, "127.0.0.1", port, 1 << 20,
                         domains="acme.example, help@other.example")
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            await asyncio.to_thread(_send, port, ["someone@elsewhere.example"], mail("f1@x"))
        ((code, text),) = err.value.recipients.values()
        assert code == 550 and b"5.1.1" in text
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await asyncio.to_thread(_send, port, ["nope@other.example"], mail("f2@x"))
        # one good recipient is enough; the foreign one is reported back as refused
        refused = await asyncio.to_thread(
            _send, port, ["Support+T42@acme.example", "x@elsewhere.example"], mail("p1@x"))
        assert list(refused) == ["x@elsewhere.example"]
        await asyncio.to_thread(_send, port, ["help+vip@other.example"], mail("p2@x"))
        assert await eventually(lambda: _count(stack, 2))
        assert await _mailboxes(stack) == ["help+vip@other.example", "support+t42@acme.example"]
    finally:
        server.close()


async def _count(stack: Stack, n: int) -> bool:
    return len(await stack.tickets()) >= n


async def test_smtp_starttls_and_required_auth(stack: Stack, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    port = free_port()
    server = await serve(stack.intake, "127.0.0.1", port, 1 << 20, tls_cert=str(cert),
                         tls_key=str(key), auth="kim:pa:ss,lee:x")

    def features(tls: bool) -> dict[str, str]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            if tls:
                smtp.starttls(context=ssl.create_default_context(cafile=str(cert)))
            smtp.ehlo()
            return dict(smtp.esmtp_features)

    try:
        plain = await asyncio.to_thread(features, False)
        assert "starttls" in plain and "auth" not in plain  # never offered in plain text
        assert "PLAIN" in (await asyncio.to_thread(features, True))["auth"]
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await asyncio.to_thread(_send, port, ["support@acme.example"], mail("a0@x"),
                                    cafile=str(cert))
        assert refused.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError):
            await asyncio.to_thread(_send, port, ["support@acme.example"], mail("a1@x"),
                                    cafile=str(cert), login=("kim", "wrong"))
        await asyncio.to_thread(_send, port, ["support@acme.example"], mail("a2@x"),
                                cafile=str(cert), login=("kim", "pa:ss"))
        (row,) = await eventually(stack.tickets)
        assert row["mailbox"] == "support@acme.example"
    finally:
        server.close()


async def test_smtp_auth_without_tls_needs_explicit_insecure(stack: Stack) -> None:
    with pytest.raises(ValueError, match="TIDYDESK_SMTP_AUTH_INSECURE"):
        await serve(stack.intake, "127.0.0.1", free_port(), 1 << 20, auth="kim:pw")
    port = free_port()
    server = await serve(stack.intake, "127.0.0.1", port, 1 << 20, auth="kim:pw",
                         auth_insecure=True)
    try:
        await asyncio.to_thread(_send, port, ["support@acme.example"], mail("i1@x"),
                                login=("kim", "pw"))
        assert await eventually(stack.tickets)
    finally:
        server.close()


# --- Postmark ------------------------------------------------------------------------------

async def test_postmark_payload_becomes_one_ticket(stack: Stack) -> None:
    payload = (DATA / "postmark.json").read_bytes()
    raw = postmark_to_mime(payload)
    assert raw == postmark_to_mime(payload)  # a retried webhook is the same mail
    event, new = await stack.intake.accept(raw)
    assert new and isinstance(event, MessageReceived)
    assert event.message_id == "CAF=refund-1187@mail.customer.example"
    assert event.sender == "minji@customer.example" and event.sender_name == "Minji Kim"
    assert event.to == ("support+t4821@acme.example",)
    assert event.cc == ("jo@customer.example", "ops@customer.example")
    assert event.in_reply_to == ("ack-1187@acme.example",)
    assert event.references == ("order-1187@acme.example", "ack-1187@acme.example")
    assert event.subject == "Re: Refund for order 1187 — 환불"
    assert event.date is not None and event.date.utcoffset() is not None
    assert event.reply == "Any news on the refund?"
    assert [(a.name, a.content_type, a.size) for a in event.attachments] == [
        ("receipt.pdf", "application/pdf", 54), ("note.txt", "text/plain", 5)]
    assert (await stack.intake.accept(postmark_to_mime(payload)))[1] is False
    (row,) = await eventually(stack.tickets)
    assert row["requester"] == "minji@customer.example"


@pytest.mark.parametrize(("payload", "message"), [
    (b"{not json", "malformed Postmark inbound JSON"),
    (b"[]", "wrong shape"),
    (b'{"From": 3}', "$.From"),
    (b'{"Subject": "no sender"}', "no sender"),
    (b'{"From": "a@b.example", "Attachments": [{"Name": "x", "Content": "!!"}]}', "base64"),
])
def test_postmark_malformed_json_is_a_value_error(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        postmark_to_mime(payload)


def test_postmark_copies_headers_that_matter_and_survives_odd_ones() -> None:
    payload = msgspec.json.encode({
        "FromFull": {"Email": "bot@example.com", "Name": ""}, "MessageID": "pm-1",
        "Date": "not a date", "TextBody": "", "HtmlBody": "<p>Out of office</p>",
        "Headers": [{"Name": "Auto-Submitted", "Value": "auto-replied"},
                    {"Name": "Bad Name", "Value": "x"}, {"Name": "X-Null", "Value": None},
                    {"Name": "X-Fold", "Value": "a\r\nb"}],
        "Attachments": [{"Name": "x.bin", "Content": "", "ContentType": "multipart/x"}]})
    raw = postmark_to_mime(payload)
    assert b"Bad Name" not in raw and b"X-Fold: a b" in raw and b"Date:" not in raw
    event = parse(raw, mailbox="support@acme.example")  # the webhook's ?mailbox=
    assert isinstance(event, MessageReceived)
    assert event.message_id == "pm-1@inbound.postmarkapp.com"  # stable across retries
    assert event.auto == "Auto-Submitted: auto-replied" and "Out of office" in event.text
    assert event.attachments[0].content_type == "application/octet-stream"


# --- bulk import ---------------------------------------------------------------------------

def _mbox(path: Path, messages: list[bytes]) -> None:
    box = mailbox.mbox(path)
    for raw in messages:
        box.add(raw)
    box.close()


async def test_import_mbox_twice_imports_nothing_new_and_resumes(stack: Stack,
                                                                  tmp_path: Path) -> None:
    source = tmp_path / "archive.mbox"
    good = [mail(f"m{i}@example.com", f"mail {i}", subject=f"Subject {i}") for i in range(5)]
    _mbox(source, [*good, b"Subject: no sender at all\n\nbody\n"])
    home = tmp_path / "home"
    first = await import_path(stack.intake, source, progress=False, home=home)
    assert (first.imported, first.rejected, first.duplicates, first.skipped) == (5, 1, 0, 0)
    assert checkpoint_file(home, source).exists()
    again = await import_path(stack.intake, source, progress=False, home=home)
    assert (again.imported, again.duplicates, again.skipped) == (0, 0, 6)
    # without the checkpoint, intake's own dedupe refuses every one of them
    replay = await import_path(stack.intake, source, progress=False)
    assert (replay.imported, replay.duplicates, replay.rejected) == (0, 6, 0)
    _mbox(source, [mail("m5@example.com", subject="Subject 5")])  # the archive grew
    grown = await import_path(stack.intake, source, progress=False, home=home)
    assert (grown.imported, grown.skipped) == (1, 6)
    assert await eventually(lambda: _count(stack, 6))


async def test_import_maildir_and_the_command(stack: Stack, tmp_path: Path,
                                              nats_url: str) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for i in range(3):
        box.add(mail(f"md{i}@example.com", subject=f"Maildir {i}"))
    report = await import_path(stack.intake, tmp_path / "Maildir", progress=False)
    assert (report.total, report.imported) == (3, 3)
    env = {**os.environ, "TIDYDESK_NATS_URL": nats_url, "TIDYDESK_NAMESPACE": stack.ns,
           "TIDYDESK_HOME": str(tmp_path / "home")}
    code = "import sys; from tidydesk.ingest.imports import main; sys.exit(main(sys.argv[1:]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(tmp_path / "Maildir"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "imported 0, duplicates 3, rejected 0"
    assert "3/3" in err.decode()  # the progress bar went to stderr
    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(tmp_path / "nope"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(missing.communicate(), 60)
    assert missing.returncode == 2 and b"no such mbox file or Maildir" in err


# --- IMAP against a real Dovecot -----------------------------------------------------------

class Dovecot:
    """Dovecot on loopback ports, all state in a temp dir, run as an unprivileged user."""

    user, password = "support@acme.example", "s3cret word"

    def __init__(self, root: Path, binary: str) -> None:
        self.root, self.port, self.tls_port = root, free_port(), free_port()
        self.cert, key = make_cert(root)
        if os.geteuid() == 0:  # Dovecot refuses to run its login processes as root
            entry = pwd.getpwnam("nobody")
            uid, gid, self.run_as = entry.pw_uid, entry.pw_gid, "nobody"
        else:
            uid, gid, self.run_as = os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(gid).gr_name
        (root / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{root}/home::\n")
        (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = tidydesk-test-{self.port}
protocols = imap
listen = 127.0.0.1
default_internal_user = {self.run_as}
default_internal_group = {group}
default_login_user = {self.run_as}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir()
        for path in (root, *root.rglob("*")):
            os.chown(path, uid, gid)
        self.proc = subprocess.Popen(
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            **({"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}))
        deadline = time.monotonic() + 15
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot did not start: {log[-2000:]}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with imaplib.IMAP4("127.0.0.1", self.port, timeout=2) as imap:
                imap.login(self.user, self.password)
            return True
        except (OSError, imaplib.IMAP4.error):
            return False

    def url(self, tls: bool = False) -> str:
        user = self.user.replace("@", "%40")
        password = self.password.replace(" ", "%20")
        if tls:
            return f"imaps://{user}:{password}@127.0.0.1:{self.tls_port}/INBOX"
        return f"imap://{user}:{password}@127.0.0.1:{self.port}/INBOX"

    def deliver(self, raw: bytes) -> None:
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=10) as imap:
            imap.login(self.user, self.password)
            imap.append("INBOX", None, None, raw)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if binary is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install -y dovecot-imapd); "
                    "the IMAP poller is tested against a real server only")
    root = Path(tempfile.mkdtemp(prefix="tidydesk-dovecot-"))  # /tmp: `nobody` can reach it
    server = Dovecot(root, binary)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class CountingIntake(Intake):
    """Intake that remembers every message handed to it, to prove nothing is repeated."""

    def __init__(self, inner: Intake) -> None:
        super().__init__(inner.store, inner.raw)
        self.seen: list[str] = []

    async def accept(self, raw: bytes, *, mailbox: str = "", envelope_from: str = ""
                     ) -> tuple[MessageReceived | MessageRejected, bool]:
        event, new = await super().accept(raw, mailbox=mailbox, envelope_from=envelope_from)
        self.seen.append(event.message_id if isinstance(event, MessageReceived) else "?")
        return event, new


async def _checkpoint(stack: Stack, url: str) -> Checkpoint:
    kv = await stack.js.key_value(f"{stack.ns}_imap")
    entry = await kv.get(digest_key(parse_url(url).name))
    return msgspec.json.decode(entry.value or b"", type=Checkpoint)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_imap_idle_delivers_and_a_restart_neither_skips_nor_repeats(
        stack: Stack, dovecot: Dovecot) -> None:
    for i in range(2):
        await asyncio.to_thread(dovecot.deliver, mail(f"i{i}@example.com", subject=f"IMAP {i}"))
    intake = CountingIntake(stack.intake)
    url = dovecot.url()

    def start() -> asyncio.Task[None]:  # a poll every 10 minutes: only IDLE can be this quick
        return asyncio.create_task(poll_forever(intake, stack.js, stack.ns, url,
                                                poll_seconds=600))

    poller = start()
    try:
        assert await eventually(lambda: _count(stack, 2), within=30)
        await asyncio.to_thread(dovecot.deliver, mail("i2@example.com", subject="IMAP 2"))
        assert await eventually(lambda: _count(stack, 3), within=30)
    finally:
        await _stop(poller)
    await asyncio.to_thread(dovecot.deliver, mail("i3@example.com", subject="IMAP 3"))
    poller = start()
    try:
        assert await eventually(lambda: _count(stack, 4), within=30)
    finally:
        await _stop(poller)
    assert intake.seen == [f"i{i}@example.com" for i in range(4)]
    point = await _checkpoint(stack, url)
    assert point.last_uid == 4
    assert set(await _mailboxes(stack)) == {"support@acme.example"}


async def test_imap_over_tls_polls_and_rereads_after_uidvalidity_change(
        stack: Stack, dovecot: Dovecot) -> None:
    url = dovecot.url(tls=True)
    await asyncio.to_thread(dovecot.deliver, mail("t0@example.com", subject="TLS 0"))
    kv = await stack.js.key_value(f"{stack.ns}_imap")
    # a checkpoint from a mailbox that was since recreated: its UIDs mean nothing now
    await kv.put(digest_key(parse_url(url).name),
                 msgspec.json.encode(Checkpoint(uidvalidity=1, last_uid=99)))
    intake = CountingIntake(stack.intake)
    context = ssl.create_default_context(cafile=str(dovecot.cert))
    poller = asyncio.create_task(poll_forever(intake, stack.js, stack.ns, [url], idle=False,
                                              poll_seconds=0.2, ssl_context=context))
    try:
        assert await eventually(lambda: _count(stack, 1), within=30)
        await asyncio.to_thread(dovecot.deliver, mail("t1@example.com", subject="TLS 1"))
        assert await eventually(lambda: _count(stack, 2), within=30)
    finally:
        await _stop(poller)
    assert intake.seen == ["t0@example.com", "t1@example.com"]
    point = await _checkpoint(stack, url)
    assert point.uidvalidity != 1 and point.last_uid == 2


def test_imap_urls_parse() -> None:
    src = parse_url("imaps://help%40acme.example:p%40ss@mail.example/Support%20Queue")
    assert (src.tls, src.host, src.port, src.user, src.password, src.folder) == (
        True, "mail.example", 993, "help@acme.example", "p@ss", "Support Queue")
    assert src.recipient == "help@acme.example" and "p@ss" not in src.name
    plain = parse_url("imap://bob:x@127.0.0.1:1143?mailbox=Support@Acme.example")
    assert (plain.port, plain.folder, plain.recipient) == (1143, "INBOX", "support@acme.example")
    with pytest.raises(ValueError, match="imap://"):
        parse_url("pop3://bob:x@host")

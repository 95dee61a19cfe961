"""The drop receiver's bounds, measured on a real `ged smtpd` process: a message past
the size limit is refused with 552 while it streams in, a message of many tiny parts
is refused after a bounded count, a large acceptable message is deposited, and the
receiver's memory stays flat through all of them (read from /proc, no timing
asserted: the figures are printed). Sessions beyond GED_SMTPD_MAX_SESSIONS get 421."""

from __future__ import annotations

import base64
import os
import re
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from fixtures.archive import GED, ROOT, ProcessGroup, ged_env
from fixtures.drop_mail import free_port

MB = 1024 * 1024


class SmtpdProcess(ProcessGroup):
    """`ged smtpd` on a free port, on the test's data, in its own process group."""

    def __init__(self, env: dict):
        self.port = free_port()
        self.log = open(os.path.join(env["GED_DATA_DIR"], "smtpd.log"), "wb")
        self.proc = subprocess.Popen([str(GED), "smtpd", "--listen", f"127.0.0.1:{self.port}"],
                                     env=env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("ged smtpd exited: " + self.output())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("ged smtpd did not answer: " + self.output()) from None
                time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as fh:
            return fh.read().decode(errors="replace")[-3000:]

    def memory(self) -> tuple[int, int]:
        """(resident now, resident peak) in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            status = fh.read()
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
        return rss, hwm

    def cpu(self) -> float:
        """CPU seconds (user + system) the process has used."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        super().stop()
        self.log.close()


@pytest.fixture
def smtpd_process(app, cfg, redis_url):
    started = []

    def start(**extra) -> SmtpdProcess:
        env = ged_env(cfg, redis_url)
        env.update({"GED_MAIL_DOMAIN": cfg.mail_domain, **{k: str(v) for k, v in extra.items()}})
        server = SmtpdProcess(env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _reply(sock_file) -> tuple[int, str]:
    lines = []
    while True:
        line = sock_file.readline()
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line.decode(errors="replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    return int(lines[-1][:3]), "\n".join(x[4:] for x in lines)


def stream(port: int, rcpt: str, chunks) -> tuple[int, str, float]:
    """An MTA sending a message generated on the fly (so the test holds none of it):
    returns the reply to DATA and the seconds from the final dot to that reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        fh = sock.makefile("rb")
        assert _reply(fh)[0] == 220
        for command in (b"EHLO mx.un.example", b"MAIL FROM:<jean@un.example>",
                        f"RCPT TO:<{rcpt}>".encode(), b"DATA"):
            sock.sendall(command + b"\r\n")
            code, text = _reply(fh)
            assert code in (250, 354), (command, code, text)
        for chunk in chunks:
            sock.sendall(chunk)
        sock.sendall(b".\r\n")
        started = time.monotonic()
        code, text = _reply(fh)
        return code, text, time.monotonic() - started


def head(rcpt: str, boundary: str) -> bytes:
    return (f"From: jean@un.example\r\nTo: {rcpt}\r\nSubject: Gros envoi\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nVoici.\r\n").encode()


def csv_attachment(name: str, size: int, boundary: str):
    """A text/csv attachment of ``size`` bytes, base64 in 76-character lines, yielded
    in blocks."""
    yield (f"--{boundary}\r\nContent-Type: text/csv; name=\"{name}\"\r\n"
           f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    row = b"2026-03-01;Paiement CB boulangerie;-12,40;EUR\n"
    block = row * (57 * 1024 // len(row) + 1)
    block = block[: 57 * 1024]  # a whole number of base64 lines
    encoded = base64.encodebytes(block).replace(b"\n", b"\r\n")
    sent = 0
    while sent < size:
        yield encoded
        sent += len(block)


def big_message(rcpt: str, files: int, size: int):
    boundary = "=_big_3f2e1d"
    yield head(rcpt, boundary)
    for i in range(files):
        yield from csv_attachment(f"releve-{i}.csv", size, boundary)
    yield f"--{boundary}--\r\n".encode()


def tiny_parts(rcpt: str, count: int):
    boundary = "=_tiny_9a8b7c"
    yield head(rcpt, boundary)
    batch = []
    for i in range(count):
        batch.append(f"--{boundary}\r\nContent-Type: text/plain; name=\"n{i}.txt\"\r\n"
                     f"Content-Disposition: attachment; filename=\"n{i}.txt\"\r\n\r\nx\r\n")
        if len(batch) == 1000:
            yield "".join(batch).encode()
            batch = []
    yield ("".join(batch) + f"--{boundary}--\r\n").encode()


def test_size_parts_and_memory_of_a_real_receiver(world, smtpd_process, cfg, capsys):
    """GED_MAX_UPLOAD_MB=10 (a 21 MB message limit): a 30 MB message gets 552 as it
    streams, 100,000 one-byte attachments get 552 after 500 parts, an 18 MB message
    of two files is deposited; the receiver's peak memory grows by far less than the
    data it handled."""
    from ged import drops
    from ged.models import Document

    rcpt = drops.address_of(drops.active(world.company_a))
    server = smtpd_process(GED_MAX_UPLOAD_MB=10)
    warm = [b"From: a@un.example\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\nx\r\n"]
    assert stream(server.port, rcpt, warm)[0] == 550  # imports loaded: the baseline
    _rss, base = server.memory()
    figures = []

    code, text, seconds = stream(server.port, rcpt, big_message(rcpt, 1, 22 * MB))
    assert code == 552 and "too big" in text, text
    figures.append(("30 MB message over the limit", seconds, server.memory()[1] - base))
    from ged.models import AuditEvent

    deadline = time.monotonic() + 30

    def oversized():
        return [e for e in AuditEvent.select().where(AuditEvent.action == "email.refused")
                if "larger than" in e.details["reason"]]

    while not oversized():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    [event] = oversized()
    assert event.details["subject"] == "Gros envoi" and "larger than" in event.details["reason"]

    code, text, seconds = stream(server.port, rcpt, tiny_parts(rcpt, 100_000))
    assert code == 552 and "Too many MIME parts" in text, text
    figures.append(("100,000 one-byte attachments", seconds, server.memory()[1] - base))

    code, text, seconds = stream(server.port, rcpt, big_message(rcpt, 2, 6_800_000))
    assert code == 250 and "2 document(s) deposited" in text, (text, server.output())
    figures.append(("18 MB message, 2 files deposited", seconds, server.memory()[1] - base))
    assert Document.select().count() == 2
    size = -(-6_800_000 // (57 * 1024)) * 57 * 1024  # whole blocks of 57 KiB
    assert [d.size for d in Document.select()] == [size, size]

    with capsys.disabled():
        print()
        for label, seconds, growth in figures:
            print(f"  ged smtpd: {label}: reply {seconds:.2f} s after the final dot, "
                  f"peak RSS +{growth / MB:.1f} MB")
    assert all(growth < 60 * MB for _label, _seconds, growth in figures), figures
    assert not list((cfg.data_dir / "tmp").iterdir()), list((cfg.data_dir / "tmp").iterdir())


@pytest.mark.slow
def test_large_and_concurrent_messages_keep_memory_flat(world, smtpd_process, cfg, capsys):
    """The issue's figures: a 60 MB message (two 22 MB files), 300,000 one-byte
    attachments, and five 15 MB messages at once, on GED_MAX_UPLOAD_MB=30; peak RSS
    growth stays under 100 MB."""
    from ged import drops
    from ged.models import Document

    rcpt = drops.address_of(drops.active(world.company_a))
    server = smtpd_process(GED_MAX_UPLOAD_MB=30)
    warm = [b"From: a@un.example\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\nx\r\n"]
    stream(server.port, rcpt, warm)
    base = server.memory()[1]

    cpu = server.cpu()
    code, text, seconds = stream(server.port, rcpt, big_message(rcpt, 2, 22 * MB))
    assert code == 250, text
    single, single_cpu = server.memory()[1] - base, server.cpu() - cpu

    cpu = server.cpu()
    code, text, tiny_seconds = stream(server.port, rcpt, tiny_parts(rcpt, 300_000))
    assert code == 552 and "Too many MIME parts" in text, text
    tiny, tiny_cpu = server.memory()[1] - base, server.cpu() - cpu

    results = []

    def send(i):
        results.append(stream(server.port, rcpt, big_message(rcpt, 1, 11 * MB + i * 57 * 1024)))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    concurrent = server.memory()[1] - base
    assert [r[0] for r in results] == [250] * 5, results
    assert Document.select().count() == 7
    with capsys.disabled():
        print(f"\n  ged smtpd: 60 MB message: reply {seconds:.2f} s after the dot, "
              f"{single_cpu:.1f} s CPU, peak RSS +{single / MB:.1f} MB"
              f"\n  ged smtpd: 300,000 one-byte attachments (36 MB): 552 {tiny_seconds:.2f} s "
              f"after the dot, {tiny_cpu:.1f} s CPU, peak RSS +{tiny / MB:.1f} MB"
              f"\n  ged smtpd: five 15 MB messages at once: {elapsed:.1f} s, "
              f"peak RSS +{concurrent / MB:.1f} MB")
    assert single < 100 * MB and concurrent < 100 * MB and tiny < 100 * MB


def test_sessions_beyond_the_cap_are_told_to_come_back(app, cfg):
    """GED_SMTPD_MAX_SESSIONS: the next connection gets 421 and is closed; once one
    session ends, a new one is served."""
    from ged import smtpd

    cfg.smtpd_max_sessions = 2
    controller = smtpd.make_controller("127.0.0.1", free_port())
    controller.start()
    try:
        first = smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
        second = smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
        with pytest.raises(smtplib.SMTPConnectError) as exc:
            smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
        assert exc.value.smtp_code == 421 and b"Too many" in exc.value.smtp_error
        assert second.noop()[0] == 250
        first.quit()
        deadline = time.monotonic() + 10
        while True:  # the server notices the closed session
            try:
                third = smtplib.SMTP("127.0.0.1", controller.port, timeout=10)
                break
            except smtplib.SMTPConnectError:
                assert time.monotonic() < deadline, "the freed session was never reused"
                time.sleep(0.05)
        assert third.noop()[0] == 250
        third.quit()
        second.quit()
    finally:
        controller.stop()

"""A real `chroma run` on loopback, and a token gate in front of it, for team-mode tests.

The chroma binary is the console script of the chromadb wheel, so it sits next to the
interpreter running the tests (`.venv/bin/chroma`); no other install is needed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

GATE = Path(__file__).with_name("token_gate.py")
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_binary() -> str:
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if not found:
        raise AssertionError(
            f"No `chroma` next to {sys.executable} or on PATH: it comes with the chromadb "
            "wheel (`pip install -c constraints.txt -e '.[dev]'`)."
        )
    return found


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def _wait(server: Server, path: str, verify: str | bool = True, headers: dict | None = None):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            r = httpx.get(server.url + path, timeout=2, verify=verify, headers=headers)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    raise AssertionError(f"{server.url} did not answer {path} (exit {server.proc.poll()}):\n{tail}")


def start_chroma(workdir: Path) -> Server:
    """`chroma run --path DIR --host 127.0.0.1 --port N`, once its heartbeat answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(workdir)}
    for attempt in range(3):
        port = free_port()
        log = workdir / f"chroma-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    chroma_binary(),
                    "run",
                    "--path",
                    str(workdir / "data"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        try:
            _wait(server, "/api/v2/heartbeat")
            return server
        except AssertionError:
            if attempt == 2:
                raise  # the port was taken between choosing and binding: try another
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(workdir: Path) -> Certs:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contextd test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = Certs(workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    out.ca.write_bytes(ca.public_bytes(pem))
    out.cert.write_bytes(cert.public_bytes(pem))
    out.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return out


def start_gate(workdir: Path, upstream: str, token: str, certs: Certs) -> Server:
    """tests/token_gate.py: https on loopback, `Authorization: Bearer <token>` or 401."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "gate-token"
    token_file.write_text(token)
    for attempt in range(3):
        port = free_port()
        log = workdir / f"gate-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(GATE),
                    "--port",
                    str(port),
                    "--upstream",
                    upstream,
                    "--token-file",
                    str(token_file),
                    "--cert",
                    str(certs.cert),
                    "--key",
                    str(certs.key),
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(f"https://127.0.0.1:{port}", proc, log)
        try:
            _wait(server, "/api/v2/heartbeat", verify=str(certs.ca),
                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            return server
        except AssertionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")

"""HTTPS for tests of packages fetched by URL: a certificate authority made in the test, a server
certificate it signs for 127.0.0.1, and an aiohttp server of package tars that can misbehave."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
    decipher_only=False,
)  # fmt: skip


def make_ca(folder: Path, name: str) -> tuple[Path, Any, x509.Certificate]:
    """A certificate authority of our own: its PEM file, key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def server_tls(folder: Path, ca_key: Any, ca_cert: x509.Certificate, name: str) -> ssl.SSLContext:
    """A TLS context for 127.0.0.1 with a certificate the CA signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class PackageServer:
    """Serves tars under /pkg/NAME (with ranges), /cut/NAME (the first answer stops halfway),
    /plain/NAME (redirects to http://) and /padded/NAME (more bytes than the package)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.ranges: list[str | None] = []  # the Range header of each request, in order
        self.cut_done: set[str] = set()
        app = web.Application()
        app.router.add_get("/pkg/{name}", self.package)
        app.router.add_get("/cut/{name}", self.cut)
        app.router.add_get("/plain/{name}", self.plain)
        app.router.add_get("/padded/{name}", self.padded)
        self.runner = web.AppRunner(app)

    async def start(self, contexts: list[ssl.SSLContext]) -> list[int]:
        await self.runner.setup()
        ports = []
        for context in contexts:
            site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return ports

    async def package(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        data = self.files[request.match_info["name"]]
        start = 0
        if request.http_range.start is not None:
            start = request.http_range.start
            response = web.Response(body=data[start:], status=206)
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return response
        return web.Response(body=data)

    async def cut(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name in self.cut_done:
            return await self.package(request)
        self.cut_done.add(name)
        self.ranges.append(request.headers.get("Range"))
        data = self.files[name]
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        request.transport.close()  # type: ignore[union-attr]  # the link drops halfway
        return response

    async def plain(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://127.0.0.1:9/pkg/{request.match_info['name']}")

    async def padded(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.files[request.match_info["name"]] + b"\0" * 4096)

"""HTTPS for tests of packages fetched by URL: a server certificate for 127.0.0.1 signed by a test
CA (both made by ``tests/pki_support.py``), and an aiohttp server of package tars that can misbehave."""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki_support import issue, write_cert, write_key


def server_tls(
    folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str
) -> ssl.SSLContext:
    """A TLS context for 127.0.0.1 with a certificate the CA (``pki_support.make_ca``) signed."""
    key, cert = issue(
        ca_key, ca_cert, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, ip_addresses=("127.0.0.1",)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(write_cert(cert, folder / f"{name}.crt"), write_key(key, folder / f"{name}.key"))
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

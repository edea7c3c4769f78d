"""A package index the test starts: a directory (a PEP 503 tree) served over real HTTP, or HTTPS
with a self-signed certificate, on 127.0.0.1 from a thread of the test process; optionally behind
Basic authentication, and optionally answering some requests itself (a stand-in API)."""

import base64
import datetime
import http.server
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple
from urllib.parse import urlsplit

# (status, content type, body), or None to serve the file the path names.
Answer = Optional[Tuple[int, str, bytes]]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str
    body: bytes


def self_signed_certificate(directory: Path) -> Tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, trusted by nothing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "index-cert.pem", directory / "index-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class IndexServer:
    def __init__(
        self,
        root: Path,
        *,
        credentials: Optional[Tuple[str, str]] = None,
        tls: Optional[Tuple[Path, Path]] = None,
        answer: Callable[[Request], Answer] = lambda request: None,
        hold: bool = False,
    ):
        """``hold``: accept every request and never answer it (until the server stops)."""
        self.root = root
        self.requests: List[Request] = []
        self._released = threading.Event()
        expected = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode() if credentials else None
        )
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(method, self.path, self.headers.get("Authorization", ""), self.rfile.read(length))
                server.requests.append(request)
                if hold:
                    server._released.wait()
                    return
                answered = answer(request)
                if answered is not None:
                    status, content_type, body = answered
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if expected is not None and request.authorization != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="index"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if method == "GET":
                    super().do_GET()
                elif method == "HEAD":
                    super().do_HEAD()
                else:
                    self.send_error(404)

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

            def do_POST(self):
                self._handle("POST")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def __enter__(self) -> "IndexServer":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def fetched(self, fragment: str) -> bool:
        return any(fragment in request.path for request in self.requests)

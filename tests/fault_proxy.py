"""A small fault-injecting HTTP proxy between boto3 and the local S3 server (moto), for tests.

``train``'s download child is pointed at the proxy through AWS_ENDPOINT_URL_S3; the proxy
forwards each request to the real server unless a planned fault takes it: an error status
(5xx that later requests get past, 403, 404), a connection reset halfway through the body, a
delay before the answer, or no answer at all. Loopback only; every wait is bounded.
"""

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple
from urllib.parse import urlparse

# S3's own codes for the statuses a plan may return, so botocore parses them as S3 errors.
_S3_CODES = {403: "AccessDenied", 404: "NoSuchKey", 500: "InternalError", 503: "SlowDown"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
# A held request is let go after this long even if the test forgets to stop the proxy.
MAX_HOLD_SECONDS = 60.0


@dataclass
class Fault:
    """What the proxy does to the next ``times`` requests that match ``methods`` (None: forever).

    kind: "status" (answer ``status`` with an S3 error body), "reset" (forward, send the headers
    and half the body, then reset the connection), "delay" (wait ``seconds``, then forward) or
    "hold" (never answer, until the proxy stops or MAX_HOLD_SECONDS pass).
    """

    kind: str
    methods: Tuple[str, ...] = ("GET", "HEAD")
    times: Optional[int] = None
    status: int = 503
    seconds: float = 0.0
    path_contains: str = ""
    used: int = field(default=0, init=False)

    def takes(self, method: str, path: str) -> bool:
        return (
            method in self.methods
            and self.path_contains in path
            and (self.times is None or self.used < self.times)
        )


def status(code: int, *, methods=("GET", "HEAD"), times=None, path_contains="") -> Fault:
    return Fault("status", tuple(methods), times, status=code, path_contains=path_contains)


def reset_mid_body(*, times=None) -> Fault:
    return Fault("reset", ("GET",), times)


def delay(seconds: float, *, methods=("GET", "HEAD"), times=None) -> Fault:
    return Fault("delay", tuple(methods), times, seconds=seconds)


def hold(*, methods=("GET",), times=None) -> Fault:
    return Fault("hold", tuple(methods), times)


class FaultProxy:
    def __init__(self, upstream: str):
        parsed = urlparse(upstream)
        self._upstream = (parsed.hostname, parsed.port)
        self._faults: List[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.log: List[Tuple[str, str, str]] = []
        """(method, path, what the proxy did) for every request, in order."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy._handle(self)

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def plan(self, *faults: Fault) -> None:
        """Faults are tried in order; a request none of them takes is forwarded untouched."""
        with self._lock:
            self._faults = list(faults)
            self.log.clear()

    def count(self, method: str, what: str) -> int:
        with self._lock:
            return sum(1 for m, _, w in self.log if m == method and w == what)

    def wait_for(self, method: str, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.count(method, what):
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy saw no {method} it answered with {what!r}: {self.log}")
            time.sleep(0.02)

    def _take(self, method: str, path: str) -> Optional[Fault]:
        with self._lock:
            for fault in self._faults:
                if fault.takes(method, path):
                    fault.used += 1
                    return fault
        return None

    def _record(self, method: str, path: str, what: str) -> None:
        with self._lock:
            self.log.append((method, path, what))

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        fault = self._take(method, path)
        if fault is not None and fault.kind == "status":
            self._record(method, path, str(fault.status))
            self._send_error(request, fault.status)
            return
        if fault is not None and fault.kind == "hold":
            self._record(method, path, "hold")
            self._stopping.wait(MAX_HOLD_SECONDS)
            request.close_connection = True
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        code, reason, headers, data = self._forward(request, method, path, body)
        if fault is not None and fault.kind == "reset" and method == "GET" and len(data) > 1:
            self._record(method, path, "reset")
            self._send_head(request, code, reason, headers, len(data))
            request.wfile.write(data[: len(data) // 2])
            request.wfile.flush()
            self._reset(request)
            return
        self._record(method, path, "delay" if fault is not None else str(code))
        # A HEAD's Content-Length is the object's size, not that of the empty body.
        self._send_head(request, code, reason, headers, None if method == "HEAD" else len(data))
        if method != "HEAD":
            request.wfile.write(data)

    def _forward(self, request, method: str, path: str, body: bytes):
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            connection.close()

    @staticmethod
    def _send_head(request, code: int, reason: str, headers, length: Optional[int]) -> None:
        request.send_response_only(code, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and (length is None or name.lower() != "content-length"):
                request.send_header(name, value)
        if length is not None:
            request.send_header("Content-Length", str(length))
        request.end_headers()

    @staticmethod
    def _send_error(request, code: int) -> None:
        s3_code = _S3_CODES.get(code, str(code))
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{s3_code}</Code>'
            f"<Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
        ).encode()
        request.send_response_only(code)
        request.send_header("Content-Type", "application/xml")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)

    @staticmethod
    def _reset(request) -> None:
        """Closes with RST, not FIN: what a dropped connection looks like to the client."""
        connection = request.connection
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
        except OSError:
            pass
        request.close_connection = True

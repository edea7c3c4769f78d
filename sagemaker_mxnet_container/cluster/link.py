"""The liveness link: the hosts' supervisors watch each other, and the job ends together.

ps-lite has no failure handling: when a host dies, the others block in a barrier forever. So the
supervisors keep a link of their own. The first host's supervisor listens; every other host's
connects to it, and each side sends a heartbeat every second. A closed connection (the host's
processes died) or a silence longer than the heartbeat timeout (the host hung, or its network
went) ends the job on every host, and so does a failure that one host reports. At the end, every
host waits until all the others have finished, because their workers may still need its server.

Messages are JSON objects, one per line: ``hello`` (host, hosts), ``beat``, ``arrive`` (barrier),
``failed`` (reason) from the hosts; ``welcome``, ``beat``, ``release`` (barrier) and ``abort``
(reason) from the first host.
"""

import json
import logging
import select
import socket
import threading
import time
from typing import Callable, Dict, Mapping, Optional, Sequence

from sagemaker_mxnet_container.errors import Aborted, ClusterError

logger = logging.getLogger(__name__)

# Ten beats in the default timeout (settings: 10 s): a few late or lost ones are no loss.
HEARTBEAT_INTERVAL_SECONDS = 1.0
_MAX_MESSAGE_BYTES = 65536
_MAX_REASON_CHARS = 2000
_POLL_SECONDS = 0.2


class _Connection:
    """One end of a line-delimited JSON stream, with the time it was last heard from."""

    def __init__(self, sock: socket.socket, host: Optional[str] = None):
        self.sock = sock
        self.host = host
        self.last_heard = time.monotonic()
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def has_unread_data(self) -> bool:
        """Something has arrived that the reading thread has not read yet: the peer is not
        silent, this host was slow (a starved thread, a paused machine)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def send(self, **message) -> bool:
        data = (json.dumps(message) + "\n").encode()
        with self._send_lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def receive(self) -> Optional[dict]:
        """The next message, or None when the connection closed or broke."""
        try:
            line = self._reader.readline(_MAX_MESSAGE_BYTES)
        except (OSError, ValueError):
            return None
        if not line.endswith(b"\n"):
            return None
        self.last_heard = time.monotonic()
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Link:
    """This host's end of the job's liveness link.

    ``on_abort`` is called once, from a link thread, with the reason the job must end here.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        current_host: str,
        addresses: Mapping[str, str],
        port: int,
        heartbeat_timeout: float,
        on_abort: Callable[[str], None],
    ):
        self.hosts = tuple(hosts)
        self.current_host = current_host
        self.first_host = self.hosts[0]
        self._addresses = dict(addresses)
        self._port = port
        self._heartbeat_timeout = heartbeat_timeout
        self._on_abort = on_abort
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._peers: Dict[str, _Connection] = {}
        self._arrived: Dict[str, set] = {}
        self._released: set = set()
        self._departed: set = set()
        self._finished = False
        self._closed = False
        self.abort_reason: Optional[str] = None
        self._listener: Optional[socket.socket] = None

    @property
    def is_first(self) -> bool:
        return self.current_host == self.first_host

    # --- opening ---------------------------------------------------------------------------

    def open(self, wait_seconds: float) -> None:
        """Meets every other host, or raises ClusterError naming who never came."""
        heartbeat = threading.Thread(target=self._heartbeat, name="link-heartbeat", daemon=True)
        if self.is_first:
            self._listen()
            # The hosts that came early must hear from this one while the late ones boot.
            heartbeat.start()
            self._await_hosts(wait_seconds)
        else:
            self._connect(wait_seconds)
            heartbeat.start()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("0.0.0.0", self._port))
        except OSError as error:
            listener.close()
            raise ClusterError(
                f"Cannot listen on port {self._port} on {self.current_host} for the other hosts: {error.strerror}. "
                "Another process uses it; choose a free one with the hyperparameter sagemaker_liveness_port."
            ) from None
        listener.listen(len(self.hosts) + 8)
        self._listener = listener
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(_Connection(sock),), name="link-peer", daemon=True).start()

    def _serve(self, connection: _Connection) -> None:
        connection.sock.settimeout(self._heartbeat_timeout)
        hello = connection.receive()
        connection.sock.settimeout(None)
        host = hello.get("hello") if hello else None
        with self._lock:
            acceptable = (
                host in self.hosts
                and host != self.first_host
                and host not in self._peers
                and hello.get("hosts") == list(self.hosts)
            )
            if acceptable:
                connection.host = host
                self._peers[host] = connection
                self._changed.notify_all()
        if not acceptable:
            logger.warning("Refusing a link connection that is not from another host of this job: %r", hello)
            connection.close()
            return
        connection.send(welcome=self.first_host)
        logger.info("Host %s joined", host)
        while True:
            message = connection.receive()
            if message is None:
                self._lost(host, "its connection to the first host closed (the host, or its supervisor, died)")
                with self._lock:
                    self._departed.add(host)
                    self._changed.notify_all()
                return
            if "arrive" in message:
                self._arrive(host, str(message["arrive"]))
            elif "failed" in message:
                self._abort(f"Training failed on host {host}: {str(message['failed'])[:_MAX_REASON_CHARS]}")

    def _await_hosts(self, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        expected = set(self.hosts) - {self.first_host}
        with self._lock:
            while not expected <= self._peers.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = ", ".join(sorted(expected - self._peers.keys()))
                    raise ClusterError(
                        f"Host(s) {missing} did not join the job within {wait_seconds:.0f} s. Check that their "
                        "containers started and can reach the first host; SAGEMAKER_MXNET_HOST_WAIT_SECONDS sets "
                        "how long to wait."
                    )
                self._changed.wait(min(remaining, _POLL_SECONDS))

    def _connect(self, wait_seconds: float) -> None:
        address = (self._addresses[self.first_host], self._port)
        deadline = time.monotonic() + wait_seconds
        delay = 0.1
        last_error: object = "no answer"
        while True:
            try:
                sock = socket.create_connection(address, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
                connection = _Connection(sock, self.first_host)
                connection.send(hello=self.current_host, hosts=list(self.hosts))
                welcome = connection.receive()
                if welcome and welcome.get("welcome") == self.first_host:
                    sock.settimeout(None)
                    break
                connection.close()
                last_error = "it refused this host (another job on that port, or a host list that differs)"
            except OSError as error:
                last_error = error.strerror or error
            if time.monotonic() + delay > deadline:
                raise ClusterError(
                    f"Could not reach the supervisor on the first host {self.first_host} at "
                    f"{address[0]}:{address[1]} within {wait_seconds:.0f} s ({last_error}). Check that its "
                    "container started and that the port is open between the hosts."
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        with self._lock:
            self._peers[self.first_host] = connection
        threading.Thread(target=self._follow, args=(connection,), name="link-first-host", daemon=True).start()

    def _follow(self, connection: _Connection) -> None:
        while True:
            message = connection.receive()
            if message is None:
                self._lost(
                    self.first_host,
                    "the connection to its supervisor closed (the host, or its supervisor, died)",
                )
                return
            if "release" in message:
                with self._lock:
                    self._released.add(str(message["release"]))
                    if message["release"] == "done":
                        self._finished = True
                    self._changed.notify_all()
            elif "abort" in message:
                self._abort(str(message["abort"])[:_MAX_REASON_CHARS], broadcast=False)

    # --- liveness --------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                peers = list(self._peers.values())
            now = time.monotonic()
            for connection in peers:
                silent = now - connection.last_heard
                if silent > self._heartbeat_timeout and not connection.has_unread_data():
                    self._lost(connection.host, f"nothing was heard from it for {silent:.0f} s (the host hung, "
                               "or the network between the hosts failed)")
                    connection.close()
                else:
                    connection.send(beat=1)
            time.sleep(HEARTBEAT_INTERVAL_SECONDS)

    def _lost(self, host: str, how: str) -> None:
        with self._lock:
            if self._finished or self._closed:
                return
        role = "the first host, which runs the parameter-server scheduler" if host == self.first_host else "a host"
        self._abort(f"Host {host} ({role}) was lost: {how}. The job was ended on every host.")

    def _abort(self, reason: str, broadcast: bool = True, here: bool = True) -> None:
        """Ends the job: tells the other hosts (first host only) and, with ``here``, this one."""
        with self._lock:
            if self.abort_reason is not None or self._finished:
                return
            self.abort_reason = reason
            peers = list(self._peers.values()) if self.is_first and broadcast else []
            self._changed.notify_all()
        logger.error("%s", reason)
        for connection in peers:
            connection.send(abort=reason)
        if here:
            self._on_abort(reason)

    # --- the job's side --------------------------------------------------------------------

    def report_failure(self, reason: str) -> None:
        """Tells the other hosts that this one failed, so that they end too."""
        reason = reason[:_MAX_REASON_CHARS]
        if self.is_first:
            # This host's own failure is already on its way out; only the others need telling.
            self._abort(f"Training failed on host {self.current_host}: {reason}", here=False)
            return
        with self._lock:
            connection = self._peers.get(self.first_host)
            if self.abort_reason is None:
                self.abort_reason = reason
        if connection is not None:
            connection.send(failed=reason)

    def barrier(self, name: str, poll: Callable[[], object] = lambda: None) -> None:
        """Waits until every host has arrived here; raises Aborted if the job ends meanwhile.

        ``poll`` runs between waits, so that the caller's own processes are watched too.
        """
        if self.is_first:
            self._arrive(self.current_host, name)
        else:
            self._peers[self.first_host].send(arrive=name)
        while True:
            with self._lock:
                if self.abort_reason is not None:
                    raise Aborted(self.abort_reason)
                if name in self._released:
                    if name == "done":
                        self._finished = True
                    return
                self._changed.wait(_POLL_SECONDS)
            poll()

    def _arrive(self, host: str, name: str) -> None:
        with self._lock:
            arrived = self._arrived.setdefault(name, set())
            arrived.add(host)
            complete = arrived >= set(self.hosts)
            if complete:
                self._released.add(name)
                if name == "done":
                    # From now on the others close their connections: that is no loss.
                    self._finished = True
                self._changed.notify_all()
            peers = list(self._peers.values()) if complete else []
        for connection in peers:
            connection.send(release=name)

    def close(self) -> None:
        with self._lock:
            if self.is_first and self._finished:
                # Closing while a host's last heartbeat sits unread would reset its connection,
                # which can destroy the release it has not read yet: let the others close first.
                deadline = time.monotonic() + 5.0
                while not self._departed >= self._peers.keys() and time.monotonic() < deadline:
                    self._changed.wait(_POLL_SECONDS)
            self._closed = True
            peers = list(self._peers.values())
        if self._listener is not None:
            self._listener.close()
        for connection in peers:
            connection.close()

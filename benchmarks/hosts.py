"""Gives the job's host name an address, in a mount namespace private to this process.

The peer looks up every host of the job before it runs the user's code, and ``algo-1`` resolves
nowhere but inside a SageMaker cluster. The benchmark enters its own mount namespace and binds a
hosts file that names it over /etc/hosts, so nothing outside this process tree sees the change.
"""

import ctypes
import os
import socket
import tempfile

HOST = "algo-1"
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


class HostsError(RuntimeError):
    pass


def resolves(host: str = HOST) -> bool:
    try:
        socket.gethostbyname(host)
    except OSError:
        return False
    return True


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise HostsError(f"{what} failed: {os.strerror(errno)} (needs root, or CAP_SYS_ADMIN)")


def name_host(host: str = HOST) -> None:
    """Makes ``host`` resolve to 127.0.0.1 for this process and its children.

    Must run before this process starts a thread: a multithreaded process cannot leave its
    mount namespace.
    """
    if resolves(host):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Without this, the bind mount would propagate back to the host's namespace.
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    with open("/etc/hosts") as stream:
        current = stream.read()
    handle, path = tempfile.mkstemp(prefix="benchmark-hosts-")
    with os.fdopen(handle, "w") as stream:
        stream.write(current.rstrip("\n") + f"\n127.0.0.1 {host}\n")
    os.chmod(path, 0o644)
    _check(libc.mount(path.encode(), b"/etc/hosts", None, _MS_BIND, None), "binding a hosts file over /etc/hosts")
    # The mount holds the file open; the name is not needed any more.
    os.unlink(path)
    if not resolves(host):
        raise HostsError(f"{host} still does not resolve after binding a hosts file over /etc/hosts")

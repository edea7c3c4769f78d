"""Horovod's Gloo rendezvous server, run on the first host as a background child of ``train``.

    python -m sagemaker_mxnet_container.horovod.rendezvous --port PORT --processes-per-host N HOST [HOST ...]

Horovod's own server (``horovod.runner``) with the slot plan Horovod computes for the hosts in
the order given; the workers find it through ``HOROVOD_GLOO_RENDEZVOUS_ADDR``/``PORT``. It serves
until SIGTERM or SIGINT, and exits 2 when the port cannot be bound.
"""

import argparse
import signal
import sys
import threading


def plan(hosts, processes_per_host):
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    spec = ",".join(f"{host}:{processes_per_host}" for host in hosts)
    return get_host_assignments(parse_hosts(spec), len(hosts) * processes_per_host)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_mxnet_container.horovod.rendezvous")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes-per-host", type=int, required=True)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("hosts", nargs="+")
    args = parser.parse_args(argv)

    from horovod.runner.http.http_server import RendezvousHandler, RendezvousHTTPServer

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = RendezvousHTTPServer((args.bind, args.port), RendezvousHandler, 0)
    except OSError as error:
        print(
            f"Horovod rendezvous server cannot listen on {args.bind}:{args.port}: {error.strerror or error}; "
            "set sagemaker_horovod_rendezvous_port to a free port",
            file=sys.stderr,
        )
        return 2
    server.daemon_threads = True
    server.init(plan(args.hosts, args.processes_per_host))
    thread = threading.Thread(target=server.serve_forever, name="rendezvous", daemon=True)
    thread.start()
    print(f"Horovod rendezvous server listening on {args.bind}:{args.port} for {len(args.hosts)} host(s)", flush=True)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

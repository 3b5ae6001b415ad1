"""moto in server mode, in a child process that lives and dies with the local runner.

The child is this module run as ``python -m chalicelib.local.moto_server``: it serves
moto's own WSGI app with werkzeug's threaded server (what ``python -m moto.server`` does)
but binds first and reports the port it got on stdout, so port 0 picks a free port with
no race. It stays in the runner's process group (a terminal's Ctrl-C reaches it) yet
ignores SIGINT, so the runner decides the shutdown order: workers stop before the AWS
they talk to goes away. It exits on SIGTERM, and on Linux also when its parent dies, so
a killed runner leaves no orphan holding a port.

A subprocess rather than moto's ThreadedMotoServer: moto's request handling then has a
GIL of its own (measured on 2 cores: ≈400 put_item/s against ≈335/s threaded).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
from types import FrameType
from typing import TYPE_CHECKING

from chalicelib.local import PROJECT_ROOT, moto_dynamodb

if TYPE_CHECKING:  # moto itself is imported only in the child
    from moto.backends import SERVICE_NAMES

HOST = "127.0.0.1"
_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
# The services Herald uses (moto's names), loaded before the child reports ready.
WARM_SERVICES: tuple[SERVICE_NAMES, ...] = (
    "dynamodb",
    "sqs",
    "sns",
    "events",
    "scheduler",
    "ses",
    "sesv2",
    "s3",
    "firehose",
    "moto_api",
)


class MotoServer:
    """A moto server child process: ``start()``, then ``ready()`` for its endpoint; ``stop()``."""

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the child; it imports moto while the caller does other work."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                "--host",
                self.host,
                "--port",
                str(self.requested_port),
                "--parent",
                str(os.getpid()),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> str:
        """Wait until the child listens; returns its endpoint URL."""
        if self.port is not None:
            return self.endpoint
        if self._process is None or self._process.stdout is None:
            raise RuntimeError("moto server not started")
        output = self._process.stdout
        readable, _, _ = select.select([output], [], [], _START_TIMEOUT_SECONDS)
        line = output.readline() if readable else ""
        output.close()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto server did not start on {self.host}:{self.requested_port}")
        self.port = int(line)
        return self.endpoint

    def stop(self) -> None:
        """Terminate the child, kill it if it does not exit in time, and reap it."""
        process, self._process, self.port = self._process, None, None
        if process is None:
            return
        if process.stdout is not None:
            process.stdout.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when the runner dies (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(0)


def _lambda_functions_without_docker() -> None:
    """The embedded stack holds one Lambda function (the status forwarder a push
    application's log subscription must name, ``local.provision.status_forwarder``) and
    never runs it: the simulator calls the handler in-process. moto's ``docker_client``
    property connects to Docker on first read, and ``/moto-api/data.json`` reads every
    public attribute of every model, so without a Docker daemon that page answered 500
    as soon as the function existed. Here the property raises AttributeError instead,
    which the page skips like any attribute it cannot serialise."""
    from moto.utilities.docker_utilities import DockerModel

    def no_docker(self: DockerModel) -> None:
        raise AttributeError("the embedded stack runs no Lambda code in Docker")

    DockerModel.docker_client = property(no_docker)  # type: ignore[assignment,method-assign]


def serve(host: str, port: int, parent_pid: int) -> None:
    """The child's main: bind, report the port on stdout, serve until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent(parent_pid)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per AWS call
    _lambda_functions_without_docker()
    moto_dynamodb.install()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    for service in WARM_SERVICES:  # moto builds these on first use; do it before "ready"
        app.app_instances[service] = create_backend_app(service)
    bound_port = int(server.server_address[1])
    os.environ["MOTO_PORT"] = str(bound_port)  # moto builds some URLs from it
    print(bound_port, flush=True)
    with open(os.devnull, "w") as devnull:  # nobody reads our stdout any more
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server for Herald's local stack")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.parent)
    except OSError as error:  # typically: the port is taken
        print(f"moto server: {error}", file=sys.stderr)
        sys.exit(1)
    except SystemExit:  # SIGTERM: the socket is closed; skip tearing down moto's modules
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()

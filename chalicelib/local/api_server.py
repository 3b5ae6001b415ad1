"""app.py's API served over real HTTP by Chalice's local server, as ``chalice local`` does.

The differences from ``chalice local`` are deliberate: no autoreload (its worker process
outlives a killed parent and keeps the port), the socket is bound when the server is
made (so a taken port fails at once with a clear message, and port 0 picks a free one),
and requests run one at a time with the queue consumers (see ``poller.invocation_lock``).
"""

from __future__ import annotations

import errno
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.deploy.validate import validate_routes
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGateway,
)

from chalicelib.local import PROJECT_ROOT
from chalicelib.local.poller import invocation_lock

_POLL_SECONDS = 0.2


class PortInUse(RuntimeError):
    """The API port is taken; the message says what to do."""


def chalice_config(stage: str = "dev") -> Config:
    """The stage's configuration from ``.chalice/config.json``, as ``chalice local`` reads it."""
    return CLIFactory(str(PROJECT_ROOT)).create_config_obj(chalice_stage_name=stage)


class _OneInvocationAtATime(LocalGateway):
    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        with invocation_lock:
            return super().handle_request(*args, **kwargs)


class _RequestHandler(ChaliceRequestHandler):
    """Chalice's request handler with the serialising gateway."""

    def __init__(
        self, request: Any, client_address: Any, server: Any, app_object: Any, config: Config
    ) -> None:
        self.local_gateway = _OneInvocationAtATime(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)


def _thread_safe(app: Any) -> Any:
    """Make ``current_request`` thread-local, as ``chalice.local.create_local_server`` does.

    Done once per process: chalice's own helper fails on the second call (it would make
    the app's class its own base), and tests start several stacks in one process.
    """
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return app


class ApiServer:
    """The API as a stack service; the port is bound on construction."""

    name = "api"

    def __init__(self, config: Config, host: str, port: int) -> None:
        import app as herald  # imported here: the stage's environment must be set first

        validate_routes(herald.app.routes)
        try:
            self._local = LocalDevServer(
                _thread_safe(herald.app), config, host, port, handler_cls=_RequestHandler
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is taken (is `make run` already running?); "
                    "set HERALD_PORT to use another"
                ) from error
            raise
        self.host = host
        self.port = int(self._local.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._local.server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="herald-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._local.shutdown()  # returns once the serving loop has ended

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        self._local.server.server_close()
        return self._thread is None or not self._thread.is_alive()

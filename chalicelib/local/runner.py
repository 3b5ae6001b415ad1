"""The embedded stack: Herald on a laptop, with moto standing in for AWS.

``EmbeddedStack`` starts moto in a child process, points this process at it, provisions
every resource, creates a demo tenant, and runs what AWS would run: the API over HTTP,
a poller per queue feeding its real handler, the EventBridge Scheduler emulator, the
one-minute tick and a fake Telegram Bot API (Herald's ``telegram_api_url`` points at
it). ``stop()`` ends all of it and puts the process back as it found it (environment,
cached settings, clients and queue URLs), so tests can start one on port 0 next to a
running ``make run`` and carry on with in-process moto afterwards.

``main`` is ``make run``: the same stack on 127.0.0.1:8000 until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType

from chalice.config import Config

from chalicelib import aws
from chalicelib.local import PROJECT_ROOT
from chalicelib.local.api_server import ApiServer, PortInUse, chalice_config
from chalicelib.local.moto_server import HOST, MotoServer
from chalicelib.local.poller import poll_once
from chalicelib.local.provision import provision
from chalicelib.local.scheduler import ScheduleEmulator
from chalicelib.local.services import Service, Worker
from chalicelib.local.ses_simulator import FeedbackSimulator
from chalicelib.local.telegram_api import FakeBotApi
from chalicelib.local.tick import TICK_SECONDS, invoke_tick
from chalicelib.pipeline.queues import forget_queue_urls
from chalicelib.settings import QUEUE_ROLES, get_settings
from chalicelib.store import tenants

DEFAULT_PORT = 8000
DEFAULT_STATE_FILE = PROJECT_ROOT / ".herald" / "local.json"
POLL_WAIT_SECONDS = 1  # SQS long poll: idle pollers cost one request per second each
SCHEDULER_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 10.0
# Never a real account: whatever credentials the shell has, the local stack signs with these.
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
}


def background_services(config: Config) -> list[Service]:
    """What AWS runs by itself around the handlers. A new emulator joins this list (any
    ``Service``); the stack starts it after provisioning and stops it before moto."""
    scheduler = ScheduleEmulator()
    return [
        *(
            Worker(f"poller {role}", partial(poll_once, role, wait_seconds=POLL_WAIT_SECONDS), 0)
            for role in QUEUE_ROLES
        ),
        Worker("scheduler", scheduler.fire_due_schedules, SCHEDULER_SECONDS),
        Worker(
            "tick",
            partial(invoke_tick, timeout_seconds=config.lambda_timeout or 60),
            TICK_SECONDS,
            immediately=False,
        ),
        FeedbackSimulator(),
    ]


def _forget_endpoint() -> None:
    """Drop everything cached from the previous environment (settings, clients, URLs)."""
    get_settings.cache_clear()
    aws.reset_clients()
    forget_queue_urls()


class EmbeddedStack:
    """Herald with moto, the API and the background services; a context manager.

    ``port=0`` serves the API on a free port. With ``state_file`` set, the connection
    details are written there once everything runs (and removed on stop).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = HOST,
        state_file: Path | None = None,
        stage: str = "dev",
    ) -> None:
        self.host = host
        self.requested_port = port
        self.state_file = state_file
        self.stage = stage
        self.admin_key = ""
        self.api_key = ""
        self.tenant_id = ""
        self._moto = MotoServer(host)
        self._api: ApiServer | None = None
        self.telegram: FakeBotApi | None = None
        self._services: list[Service] = []
        self._saved_env: dict[str, str | None] = {}

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise RuntimeError("stack not started")
        return self._api.url

    @property
    def aws_endpoint(self) -> str:
        return self._moto.endpoint

    @property
    def moto_pid(self) -> int | None:
        return self._moto.pid

    def healthy(self) -> bool:
        return self._moto.alive()

    def start(self) -> EmbeddedStack:
        """Start everything; on any failure, stop what did start and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = chalice_config(self.stage)
        for name, value in {
            **config.environment_variables,
            **_FAKE_CREDENTIALS,
            "HERALD_ALLOW_LOOPBACK_CALLBACKS": "true",
            "HERALD_VERIFICATION_RESOLVER": "stub",
            # As the stack sets it: push senders log delivery status (the simulator logs it).
            "HERALD_PUSH_DELIVERY_STATUS": "true",
        }.items():
            self._set_env(name, value)
        _forget_endpoint()
        self._moto.start()  # moto loads in its process while this one imports the app
        self._api = ApiServer(config, self.host, self.requested_port)  # binds: fails fast
        self._services.append(self._api)
        self.telegram = FakeBotApi(self.host)
        self._services.append(self.telegram)
        self._set_env("HERALD_TELEGRAM_API_URL", self.telegram.url)
        self._set_env("HERALD_PUBLIC_BASE_URL", self._api.url)
        self._set_env("HERALD_AWS_ENDPOINT_URL", self._moto.ready())
        _forget_endpoint()
        provision()
        self.admin_key = tenants.create_admin_key("local")
        tenant, _, self.api_key = tenants.create_tenant("Demo")
        self.tenant_id = tenant.id
        self._services[:0] = background_services(config)
        for service in self._services:
            service.start()
        if self.state_file is not None:
            self._write_state(self.state_file)

    def stop(self) -> None:
        """Stop every service, then moto; restore the environment. Safe to call twice."""
        services, self._services = self._services, []
        for service in reversed(services):  # the API first: no new work from outside
            service.stop()
        for service in reversed(services):
            stopped = service.join(STOP_TIMEOUT_SECONDS)
            print(f"stopped {service.name}" if stopped else f"{service.name} did not stop")
        pid = self._moto.pid
        if pid is not None:
            self._moto.stop()
            print(f"stopped moto (pid {pid})")
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        for name, value in self._saved_env.items():
            _put_env(name, value)
        self._saved_env = {}
        _forget_endpoint()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def state(self) -> dict[str, str]:
        """What a developer (or a tool) needs to talk to this stack."""
        return {
            "api_url": self.api_url,
            "admin_key": self.admin_key,
            "api_key": self.api_key,
            "tenant_id": self.tenant_id,
            "aws_endpoint": self.aws_endpoint,
            "telegram_api_url": self.telegram.url if self.telegram else "",
        }

    def _set_env(self, name: str, value: str | None) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        _put_env(name, value)

    def _write_state(self, path: Path) -> None:
        """Written whole (then renamed) and private: it holds keys, and readers poll for it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial_path = path.with_suffix(".tmp")
        partial_path.write_text(json.dumps(self.state(), indent=2) + "\n")
        partial_path.chmod(0o600)
        partial_path.replace(path)


def _put_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _banner(stack: EmbeddedStack, state_file: Path) -> str:
    return "\n".join(
        [
            "",
            "Herald is running on an embedded AWS (moto).",
            f"  API           {stack.api_url}",
            f"  AWS endpoint  {stack.aws_endpoint}",
            f"  moto state    {stack.aws_endpoint}/moto-api/data.json",
            f"  telegram      {stack.state()['telegram_api_url']}/messages (fake Bot API)",
            f"  demo tenant   {stack.tenant_id}",
            f"  keys          {state_file}",
            "Try:",
            f'  curl -H "Authorization: Bearer {stack.api_key}" {stack.api_url}/v1/api-keys',
            "Ctrl-C stops everything.",
            "",
        ]
    )


def main() -> int:
    """``make run``: serve until Ctrl-C/SIGTERM (exit 0); 1 if it cannot start or moto dies."""
    try:
        port = int(os.environ.get("HERALD_PORT", DEFAULT_PORT))
    except ValueError:
        print(f"error: HERALD_PORT must be a number, not {os.environ['HERALD_PORT']!r}")
        return 1
    state_file = Path(os.environ.get("HERALD_LOCAL_STATE") or DEFAULT_STATE_FILE)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the stack however it was started: a shell without job control starts a
    # background command with SIGINT ignored, and Python then leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = EmbeddedStack(port, state_file=state_file)
    try:
        stack.start()
        print(_banner(stack, state_file), flush=True)
        while stack.healthy():
            time.sleep(1)
        print("error: the moto server exited; stopping", file=sys.stderr)
        return 1
    except PortInUse as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()

"""Herald: the Chalice app. Wiring only; everything that decides lives in chalicelib/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Chalice, Rate

from chalicelib import observability
from chalicelib.api import docs, tenants
from chalicelib.pipeline import dispatch
from chalicelib.pipeline import tick as ticking
from chalicelib.resources import herald_resources
from chalicelib.settings import QueueRole, get_settings

settings = get_settings()
resources = herald_resources(settings)
app = Chalice(app_name="herald")
app.register_blueprint(docs.blueprint)
app.register_blueprint(tenants.blueprint)


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    name = type(event).__name__
    return observability.observe(name, event, get_response)


def _consumes(role: QueueRole) -> Callable[[Callable[[Any], Any]], Any]:
    """Subscribe the decorated function to ``role``'s queue as chalicelib.resources says."""
    spec = resources.queue(role)
    subscribe: Callable[[Callable[[Any], Any]], Any] = app.on_sqs_message(
        queue=spec.name,
        batch_size=spec.batch_size,
        maximum_batching_window_in_seconds=spec.max_batching_window_seconds,
    )
    return subscribe


@_consumes("control")
def control_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("control", event.to_dict(), event.context)


@_consumes("send")
def send_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("send", event.to_dict(), event.context)


@_consumes("feedback")
def feedback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("feedback", event.to_dict(), event.context)


@_consumes("triggers")
def trigger_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("triggers", event.to_dict(), event.context)


@_consumes("callbacks")
def callback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("callbacks", event.to_dict(), event.context)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: Any) -> dict[str, str]:
    return ticking.run_tick()

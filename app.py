"""Herald: the Chalice app. Wiring only; everything that decides lives in chalicelib/."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate

from chalicelib import observability
from chalicelib.api import docs, tenants
from chalicelib.pipeline import dispatch
from chalicelib.pipeline import tick as ticking
from chalicelib.settings import get_settings

settings = get_settings()
app = Chalice(app_name="herald")
app.register_blueprint(docs.blueprint)
app.register_blueprint(tenants.blueprint)


@app.middleware("all")
def observe(event: Any, get_response: Any) -> Any:
    name = type(event).__name__
    return observability.observe(name, event, get_response)


@app.on_sqs_message(queue=settings.queue_name("control"), batch_size=1)
def control_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("control", event.to_dict(), event.context)


@app.on_sqs_message(queue=settings.queue_name("send"), batch_size=1)
def send_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("send", event.to_dict(), event.context)


@app.on_sqs_message(
    queue=settings.queue_name("feedback"), batch_size=10, maximum_batching_window_in_seconds=1
)
def feedback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("feedback", event.to_dict(), event.context)


@app.on_sqs_message(
    queue=settings.queue_name("triggers"), batch_size=10, maximum_batching_window_in_seconds=1
)
def trigger_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("triggers", event.to_dict(), event.context)


@app.on_sqs_message(queue=settings.queue_name("callbacks"), batch_size=10)
def callback_worker(event: Any) -> dict[str, Any]:
    return dispatch.handle_batch("callbacks", event.to_dict(), event.context)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: Any) -> dict[str, str]:
    return ticking.run_tick()

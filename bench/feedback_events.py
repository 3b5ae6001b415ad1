"""What the feedback loop costs per provider event: AWS calls and DynamoDB writes.

Sends a campaign through the real pipeline against in-process moto, lets the SES
simulator report Send + Delivery for everyone and Open/Click for a share, runs the
feedback worker, then replays every event once more (SES delivers at least once) and
counts, per phase, the AWS calls by operation (``handler_calls`` leaves out the queue
polling that Lambda's event source mapping does) and the DynamoDB write requests. Prints
the figures and writes ``bench/out/feedback_events.json``.

    python -m bench.feedback_events [--recipients 500] [--open-rate 0.3] [--click-rate 0.1]

A "write" is one PutItem/UpdateItem/DeleteItem or one item of a BatchWriteItem; failed
conditional writes count too (DynamoDB bills them). ``ledger_writes`` are the updates of
message records (their contact-sends index projects keys only, so an update writes no
index entry).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import moto

from bench.harness import verified_sender
from bench.import_contacts import OUT as IMPORT_OUT  # its import sets the bench environment

OUT = IMPORT_OUT.parent / "feedback_events.json"
_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
# What Lambda's SQS event source mapping does (the local poller here), not the handler.
_EVENT_SOURCE_CALLS = {"sqs.ReceiveMessage", "sqs.DeleteMessageBatch"}


class CallCounter:
    """Counts API calls (and DynamoDB write requests) made through Herald's clients."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.writes = 0
        self.ledger_writes = 0

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        self.calls[f"{model.service_model.service_name}.{name}"] += 1
        if name in _WRITES:
            self.writes += 1
            key = params.get("Key") or params.get("Item") or {}
            if "#LEDGER#" in str(key.get("pk", {}).get("S", "")):
                self.ledger_writes += 1
        elif name == "BatchWriteItem":
            self.writes += sum(len(v) for v in params["RequestItems"].values())

    def reset(self) -> dict[str, Any]:
        figures = {
            "calls": dict(sorted(self.calls.items())),
            "handler_calls": sum(
                n for name, n in self.calls.items() if name not in _EVENT_SOURCE_CALLS
            ),
            "writes": self.writes,
            "ledger_writes": self.ledger_writes,
        }
        self.calls.clear()
        self.writes = self.ledger_writes = 0
        return figures


_PUBLISHING = (("sns", "Publish", "publish"), ("firehose", "PutRecordBatch", "put_record_batch"))


def _capture(
    published: list[tuple[str, str, dict[str, Any]]], service: str, method: str
) -> Callable[..., None]:
    """A hook that keeps each call's parameters, to make the same call again later."""

    def capture(params: dict[str, Any], **_: Any) -> None:
        published.append((service, method, dict(params)))

    return capture


def run(recipients: int, open_rate: float, click_rate: float) -> dict[str, Any]:
    os.environ.update(
        HERALD_SIMULATOR_OPEN_RATE=str(open_rate),
        HERALD_SIMULATOR_CLICK_RATE=str(click_rate),
        HERALD_SIMULATOR_DELAY_SECONDS="0",
        HERALD_SES_MAX_SEND_RATE="1000000",
    )
    with moto.mock_aws():
        from chalice.test import Client

        import app as herald
        from chalicelib.aws import client
        from chalicelib.domain.contacts import ContactFields
        from chalicelib.local.poller import drain
        from chalicelib.local.provision import provision
        from chalicelib.local.ses_simulator import FeedbackSimulator
        from chalicelib.settings import get_settings
        from chalicelib.store import tenants
        from chalicelib.store.contacts import create_contact
        from chalicelib.store.counters import read_counts

        get_settings.cache_clear()
        provision()
        tenant, _, key = tenants.create_tenant("Bench")
        for n in range(recipients):
            create_contact(tenant.id, ContactFields(email=f"reader{n}@example.com"))
        sender_address = "news@bench.example.com"
        verified_sender(sender_address, tenant.id)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with Client(herald.app, stage_name="dev") as http:

            def post(path: str, body: dict[str, Any]) -> Any:
                response = http.http.post(path, headers=headers, body=json.dumps(body))
                assert response.status_code < 300, response.body
                return json.loads(response.body)

            sender = post("/v1/senders", {"channel": "email", "from_email": sender_address})
            template = post(
                "/v1/templates",
                {
                    "name": "b",
                    "channel": "email",
                    "subject": "s",
                    "html": '<a href="https://x.example.com/">x</a>',
                },
            )
            campaign = post(
                "/v1/campaigns",
                {
                    "name": "bench",
                    "channel": "email",
                    "audience": {"all_contacts": True},
                    "template_ids": [template["id"]],
                    "sender_ids": [sender["id"]],
                },
            )
            simulator = FeedbackSimulator().install()
            post(f"/v1/campaigns/{campaign['id']}/send", {})
            drain()

            counter = CallCounter()
            for service in ("dynamodb", "sqs", "sns", "s3"):
                client(service).meta.events.register("provide-client-params.*", counter)
            # SES's publishing, whichever transport the configuration set uses: an SNS
            # publish per event, or PutRecordBatch calls of records on the Firehose stream.
            published: list[tuple[str, str, dict[str, Any]]] = []
            hooks = [
                (service, operation, _capture(published, service, method))
                for service, operation, method in _PUBLISHING
            ]
            for service, operation, hook in hooks:
                client(service).meta.events.register(
                    f"provide-client-params.{service}.{operation}", hook
                )
            simulator.flush()
            for service, operation, hook in hooks:
                client(service).meta.events.unregister(
                    f"provide-client-params.{service}.{operation}", hook
                )
            simulator.uninstall()
            counter.reset()  # the publishing itself is SES's work, not Herald's
            started = time.perf_counter()
            drain()
            first = {**counter.reset(), "seconds": round(time.perf_counter() - started, 2)}
            counts = read_counts(tenant.id, campaign["id"])

            for service, method, params in published:  # again: SES delivers at least once
                getattr(client(service), method)(**params)
            counter.reset()
            drain()
            replayed = counter.reset()
            unchanged = read_counts(tenant.id, campaign["id"]) == counts
    events = sum(len(params.get("Records", [params])) for _, _, params in published)
    return {
        "recipients": recipients,
        "events": events,
        "first_delivery": first,
        "duplicates": replayed,
        "per_event": {
            "handler_calls": round(first["handler_calls"] / events, 2),
            "writes": round(first["writes"] / events, 2),
            "duplicate_handler_calls": round(replayed["handler_calls"] / events, 2),
            "duplicate_writes": round(replayed["writes"] / events, 2),
        },
        "counts": {k: counts.get(k, 0) for k in ("sent", "delivered", "opened", "clicked")},
        "counts_unchanged_by_duplicates": unchanged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=500)
    parser.add_argument("--open-rate", type=float, default=0.3)
    parser.add_argument("--click-rate", type=float, default=0.1)
    args = parser.parse_args()
    figures = run(args.recipients, args.open_rate, args.click_rate)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

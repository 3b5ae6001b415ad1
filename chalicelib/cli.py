"""Herald's admin CLI: tenants, keys and dead-letter redrives, against local or AWS.

It talks to DynamoDB and SQS directly with your AWS credentials (or to the embedded
stack when ``HERALD_AWS_ENDPOINT_URL`` is set, as ``.herald/local.json`` says), so it
works before any admin key exists. Examples::

    python -m chalicelib.cli create-admin-key --name ops
    python -m chalicelib.cli list-admin-keys
    python -m chalicelib.cli revoke-admin-key <key id>
    python -m chalicelib.cli create-tenant "Acme Inc"
    python -m chalicelib.cli list-tenants
    python -m chalicelib.cli create-api-key <tenant id> --name ci
    python -m chalicelib.cli create-api-key <tenant id> --name dashboard --read-only \
        --expires-at 2027-01-31T00:00:00+00:00
    python -m chalicelib.cli list-api-keys <tenant id>
    python -m chalicelib.cli revoke-api-key <tenant id> <key id>
    python -m chalicelib.cli transfer-identity acme.com <tenant id>
    python -m chalicelib.cli adopt-sms-identities
    python -m chalicelib.cli get-limits <tenant id>
    python -m chalicelib.cli set-limits <tenant id> sends_per_day=5000 sms_countries='["DE"]'
    python -m chalicelib.cli dlq-depths
    python -m chalicelib.cli redrive send
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from chalicelib import aws
from chalicelib.domain import clock, ids
from chalicelib.domain.errors import HeraldError, ValidationFailed
from chalicelib.domain.limits import LimitChanges
from chalicelib.domain.mail_threads import header_message_id
from chalicelib.domain.replies import received_notification, reply_mail
from chalicelib.domain.tenants import is_tenant_id
from chalicelib.services import senders
from chalicelib.settings import QUEUE_ROLES, QueueRole, get_settings
from chalicelib.store import ledger, quotas, tenants
from chalicelib.store import senders as senders_store


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def _tenant_id(value: str) -> str:
    """A tenant id, native (32 hex) or as its dashed UUID."""
    tenant_id = ids.native(value, "")
    if not is_tenant_id(tenant_id):
        raise argparse.ArgumentTypeError(f"not a tenant id: {value!r}")
    return tenant_id


def _moment(value: str) -> datetime:
    """An ISO 8601 instant with its offset: an expiry must not depend on the machine's zone."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give an offset (e.g. +00:00): {value!r}")
    return moment


def _limit_change(value: str) -> tuple[str, Any]:
    name, equals, raw = value.partition("=")
    try:
        if not equals:
            raise ValueError("no '='")
        return name, json.loads(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not NAME=JSON: {value!r} ({error})") from None


def _queue_url(name: str) -> str:
    return str(aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def dlq_depths() -> dict[str, int]:
    """Messages waiting in each dead-letter queue."""
    settings = get_settings()
    depths: dict[str, int] = {}
    for role in QUEUE_ROLES:
        url = _queue_url(settings.dead_letter_queue_name(role))
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        depths[role] = int(attributes["ApproximateNumberOfMessages"])
    return depths


def redrive(role: QueueRole) -> dict[str, Any]:
    """Move a dead-letter queue's messages back to their queue (SQS's own redrive task)."""
    settings = get_settings()
    sqs = aws.client("sqs")
    source = sqs.get_queue_attributes(
        QueueUrl=_queue_url(settings.dead_letter_queue_name(role)),
        AttributeNames=["QueueArn"],
    )["Attributes"]["QueueArn"]
    task = sqs.start_message_move_task(SourceArn=source)
    return {"queue": role, "task_handle": task.get("TaskHandle")}


def inject_reply(
    tenant_id: str, campaign_id: str, message_id: str, *, text: str, automatic: bool
) -> dict[str, Any]:
    """Publish on the inbound topic what SES inbound would for a reply to one message sent
    (the contact answering it, or their out-of-office): to try stop-on-reply end to end."""
    record = ledger.get_message(tenant_id, campaign_id, message_id)
    if record.provider_message_id is None:
        raise ValidationFailed("the message was never accepted by SES", field="message_id")
    settings = get_settings()
    quoted = header_message_id(
        record.provider_message_id, settings.region, settings.ses_message_id_domain
    )
    to = (
        senders_store.get_sender(tenant_id, record.sender_id).from_email
        if record.sender_id
        else None
    ) or f"reply@{settings.reply_domain or 'example.com'}"
    raw = reply_mail(
        sender=record.address,
        to=to,
        subject=("Out of Office" if automatic else "Re: your message"),
        quoted=[quoted],
        text=text,
        automatic=automatic,
    )
    sns = aws.client("sns")
    topic = sns.create_topic(Name=settings.inbound_topic_name)["TopicArn"]
    at = clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
    notification = received_notification(raw, to, uuid.uuid4().hex[:28], at, topic)
    published = sns.publish(TopicArn=topic, Message=json.dumps(notification))
    return {"published": published["MessageId"], "in_reply_to": quoted}


def _add_reply_command(commands: Any) -> None:
    reply = commands.add_parser("inject-reply", help="a contact's reply to a message sent")
    reply.add_argument("tenant_id", type=_tenant_id)
    reply.add_argument("campaign_id", type=lambda v: ids.native(v, "cmp_"))
    reply.add_argument("message_id")
    reply.add_argument("--text", default="Thanks, let's talk.")
    reply.add_argument("--auto", action="store_true", help="an out-of-office answer")


def _add_identity_and_limit_commands(commands: Any) -> None:
    transfer = commands.add_parser("transfer-identity")
    transfer.add_argument("identity", help="address, domain, E.164 number or SMS sender id")
    transfer.add_argument("tenant_id", type=_tenant_id)
    commands.add_parser("adopt-sms-identities")
    commands.add_parser("get-limits").add_argument("tenant_id", type=_tenant_id)
    set_limits = commands.add_parser("set-limits")
    set_limits.add_argument("tenant_id", type=_tenant_id)
    set_limits.add_argument("changes", nargs="+", type=_limit_change, help="NAME=JSON; null resets")


def _adopt_sms_identities(_: argparse.Namespace) -> dict[str, list[str]]:
    """Claim legacy SMS senders' numbers and ids, the oldest tenant first (first come)."""
    oldest_first = sorted(tenants.list_tenants(limit=1000)[0], key=lambda t: t.created_at)
    return {t.id: senders.adopt_sms_identities(t.id) for t in oldest_first}


def _get_limits(args: argparse.Namespace) -> dict[str, Any]:
    tenants.get_tenant(args.tenant_id)
    return quotas.get_limits(args.tenant_id).model_dump()


def _set_limits(args: argparse.Namespace) -> dict[str, Any]:
    tenants.get_tenant(args.tenant_id)
    try:
        changes = LimitChanges.model_validate(dict(args.changes)).checked()
    except ValidationError as error:
        raise ValidationFailed(str(error), field="changes") from None
    return quotas.set_limits(args.tenant_id, changes).model_dump()


_OPERATOR_COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "transfer-identity": lambda a: senders.transfer_identity(a.identity, a.tenant_id).model_dump(),
    "adopt-sms-identities": _adopt_sms_identities,
    "get-limits": _get_limits,
    "set-limits": _set_limits,
    "inject-reply": lambda a: inject_reply(
        a.tenant_id, a.campaign_id, a.message_id, text=a.text, automatic=a.auto
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-admin-key").add_argument("--name", default="cli")
    commands.add_parser("list-admin-keys")
    commands.add_parser("revoke-admin-key").add_argument("key_id")
    commands.add_parser("create-tenant").add_argument("name")
    commands.add_parser("list-tenants")
    create_key = commands.add_parser("create-api-key")
    create_key.add_argument("tenant_id", type=_tenant_id)
    create_key.add_argument("--name", default="cli")
    create_key.add_argument("--read-only", action="store_true", help="GET routes only")
    create_key.add_argument("--expires-at", type=_moment, help="ISO 8601 with an offset")
    commands.add_parser("list-api-keys").add_argument("tenant_id", type=_tenant_id)
    revoke = commands.add_parser("revoke-api-key")
    revoke.add_argument("tenant_id", type=_tenant_id)
    revoke.add_argument("key_id")
    _add_identity_and_limit_commands(commands)
    commands.add_parser("dlq-depths")
    commands.add_parser("redrive").add_argument("queue", choices=QUEUE_ROLES)
    _add_reply_command(commands)
    args = parser.parse_args(argv)

    try:
        if args.command == "create-admin-key":
            _print({"admin_key": tenants.create_admin_key(args.name)})
        elif args.command == "list-admin-keys":
            _print([k.model_dump() for k in tenants.list_admin_keys()])
        elif args.command == "revoke-admin-key":
            _print(tenants.revoke_admin_key(args.key_id).model_dump())
        elif args.command == "create-tenant":
            tenant, key, secret = tenants.create_tenant(args.name)
            _print({"tenant": tenant.model_dump(), "api_key": {**key.model_dump(), "key": secret}})
        elif args.command == "list-tenants":
            _print([t.model_dump() for t in tenants.list_tenants(limit=1000)[0]])
        elif args.command == "create-api-key":
            key, secret = tenants.create_api_key(
                args.tenant_id, args.name, read_only=args.read_only, expires_at=args.expires_at
            )
            _print({**key.model_dump(), "key": secret})
        elif args.command == "list-api-keys":
            _print([k.model_dump() for k in tenants.list_api_keys(args.tenant_id)])
        elif args.command == "revoke-api-key":
            _print(tenants.revoke_api_key(args.tenant_id, args.key_id).model_dump())
        elif args.command in _OPERATOR_COMMANDS:
            _print(_OPERATOR_COMMANDS[args.command](args))
        elif args.command == "dlq-depths":
            _print(dlq_depths())
        elif args.command == "redrive":
            _print(redrive(args.queue))

    except HeraldError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

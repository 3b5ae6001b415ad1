"""Registering a contact's mobile device for push.

A device is a token from APNs or FCM under one of the tenant's push senders (SNS platform
applications) for its platform: the one named, or the only one the tenant has for that
platform. Registering the same token again answers the device already registered, with
no SNS call (idempotent per token, as SNS's own CreatePlatformEndpoint is).
"""

from __future__ import annotations

from datetime import datetime

from chalicelib.channels import push
from chalicelib.domain.contacts import Device, PushPlatformName
from chalicelib.domain.errors import ValidationFailed
from chalicelib.domain.senders import Sender
from chalicelib.store import contacts as contact_store
from chalicelib.store import senders as sender_store


def _push_sender(tenant_id: str, platform: PushPlatformName, sender_id: str | None) -> Sender:
    if sender_id is not None:
        sender = sender_store.get_sender(tenant_id, sender_id)
        if sender.channel != "push" or sender.platform != platform:
            raise ValidationFailed(
                f"sender '{sender_id}' is not a {platform} push sender", field="sender_id"
            )
        return sender
    candidates = [
        s
        for s in sender_store.all_senders(tenant_id)
        if s.channel == "push" and s.platform == platform
    ]
    if not candidates:
        raise ValidationFailed(f"this tenant has no {platform} push sender", field="platform")
    if len(candidates) > 1:
        raise ValidationFailed(
            f"this tenant has {len(candidates)} {platform} push senders; name one",
            field="sender_id",
        )
    return candidates[0]


def register_device(
    tenant_id: str,
    contact_id: str,
    *,
    platform: PushPlatformName,
    token: str,
    sender_id: str | None,
    now: datetime,
) -> tuple[Device, bool]:
    """The contact's device for ``token`` and whether this call registered it."""
    contact = contact_store.get_contact(tenant_id, contact_id)
    sender = _push_sender(tenant_id, platform, sender_id)
    for device in contact.devices:
        if device.token == token and device.sender_id == sender.id:
            return device, False
    if sender.platform_application_arn is None:
        raise ValidationFailed("the push sender has no platform application", field="sender_id")
    endpoint = push.register_endpoint(sender.platform_application_arn, token, contact_id)
    device = Device(
        platform=platform,
        token=token,
        endpoint_arn=endpoint,
        sender_id=sender.id,
        registered_at=now,
    )
    contact_store.register_device(tenant_id, contact_id, device)
    return device, True

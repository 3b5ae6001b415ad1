"""Senders as a tenant manages them: every decision that needs SES and ownership together.

The HTTP layer (native routes and the seed dialects) translates; this module decides,
using the pure rules of chalicelib/domain/identities.py and senders.py, and the store and
SES to look things up:

- creating or changing a sender refuses (409 ``identity_owned``) an identity another
  tenant owns; an SMS sender's origination number and sender id are claimed there and
  then (first come), an email identity only by verifying it;
- ``verify_sender`` claims the address or domain for the caller before asking SES, so of
  two tenants only the first gets SES to verify it; another tenant's identity is refused
  without any SES call, and an identity SES already had before Herald claimed it (made
  outside Herald) is left to an admin to assign;
- ``transfer_identity`` (admin) moves an identity and updates both tenants' senders;
- a push sender is an SNS platform application made here from the credentials given
  (which SNS keeps; Herald stores only the ARN); a Telegram sender's bot is claimed like
  an SMS sender id (first come) and its token goes to the sender secrets, never to the
  sender item; deleting either removes the application or the token too.

Each sender keeps ``owned_identities`` (the keys its tenant owns among its identities):
the send pipeline's ``usability`` check reads it, with no ownership lookup per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from pydantic import SecretStr

from chalicelib.channels import identities as ses
from chalicelib.channels import push
from chalicelib.domain import clock
from chalicelib.domain.errors import Conflict, NotFound, Unavailable, ValidationFailed
from chalicelib.domain.identities import (
    Identity,
    IdentityOwned,
    Owners,
    check_claimable_by,
    check_usable_by,
    email_identities,
    owned_by,
    sms_identities,
    telegram_identities,
)
from chalicelib.domain.model import Model
from chalicelib.domain.senders import (
    IdentityStatus,
    Sender,
    SenderChannel,
    SenderFields,
    bot_id_of,
    changed,
    check_sender,
)
from chalicelib.domain.tenants import is_tenant_id
from chalicelib.services import limits
from chalicelib.store import ownership, sender_secrets
from chalicelib.store import senders as store
from chalicelib.store import tenants as tenant_store

VerifyScope = Literal["address", "domain"]
SES_RETRY_SECONDS = 5
_FIELD_OF_KIND = {
    "address": "from_email",
    "domain": "from_email",
    "number": "origination_number",
    "sender_id": "sender_id",
    "telegram_bot": "bot_token",
}
_CLAIMED_ON_NAMING = frozenset({"sms", "telegram"})  # nothing to verify: naming claims


class IdentityTransfer(Model):
    """What an admin transfer did (the admin may see owners; tenants never do)."""

    identity: str
    kind: str
    owner: str
    previous_owner: str | None


@contextmanager
def _asking_ses() -> Iterator[None]:
    """SES's management API throttled or down, with nothing remembered: a clean 503."""
    try:
        yield
    except ses.IdentityLookupFailed as error:
        raise Unavailable(
            "SES is not answering identity lookups right now; retry shortly",
            retry_after=SES_RETRY_SECONDS,
        ) from error


def _identities_of(channel: SenderChannel, values: dict[str, object]) -> list[Identity]:
    if channel == "email":
        return list(email_identities(str(values["from_email"])))
    if channel == "telegram":
        token = values.get("bot_token")
        return telegram_identities(bot_id_of(token) if isinstance(token, SecretStr) else None)
    number, sender_id = values.get("origination_number"), values.get("sender_id")
    return sms_identities(str(number) if number else None, str(sender_id) if sender_id else None)


def _owners_allowing(tenant_id: str, wanted: list[Identity], channel: SenderChannel) -> Owners:
    """The owners of ``wanted``; IdentityOwned (naming the field) if one is another tenant's.

    SMS identities and Telegram bots nobody owns yet are claimed for ``tenant_id`` here:
    there is nothing to verify for them, so naming one on a sender first is what claims it.
    """
    owners = dict(ownership.owners(wanted))
    for identity in wanted:
        check_usable_by(tenant_id, [identity], owners, field=_FIELD_OF_KIND[identity.kind])
    if channel in _CLAIMED_ON_NAMING:
        for identity in wanted:
            if identity not in owners:
                owners[identity] = ownership.claim(identity, tenant_id, clock.now())
                check_usable_by(tenant_id, [identity], owners, field=_FIELD_OF_KIND[identity.kind])
    return owners


def _live_status(address: str) -> IdentityStatus:
    with _asking_ses():
        return ses.identity_status(address, max_age=ses.READ_CACHE_SECONDS)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def create_sender(tenant_id: str, channel: SenderChannel, fields: SenderFields) -> Sender:
    values = fields.model_dump(exclude_none=True)
    check_sender(channel, values, creating=True)
    limits.check_room_for(tenant_id, "senders")
    wanted = _identities_of(channel, values)
    owners = _owners_allowing(tenant_id, wanted, channel)
    status = _live_status(fields.from_email) if fields.from_email else None
    sender_id = store.new_sender_id()
    provider_fields: dict[str, str] = {}
    if channel == "push":
        assert fields.platform is not None and fields.credential is not None
        provider_fields["platform_application_arn"] = push.make_application(
            push.application_name(tenant_id, sender_id),
            fields.platform,
            fields.credential.get_secret_value(),
            _secret(fields.principal),
        )
    if channel == "telegram":
        assert fields.bot_token is not None
        provider_fields["bot_id"] = bot_id_of(fields.bot_token)
        sender_secrets.put_secret(tenant_id, sender_id, fields.bot_token.get_secret_value())
    return store.create_sender(
        tenant_id,
        channel,
        fields,
        status,
        owned_by(tenant_id, wanted, owners),
        sender_id=sender_id,
        provider_fields=provider_fields,
    )


def update_sender(tenant_id: str, sender_id: str, fields: SenderFields) -> Sender:
    current = store.get_sender(tenant_id, sender_id)
    updated = changed(current, fields, clock.now())
    wanted = updated.identities
    owners = _owners_allowing(tenant_id, wanted, updated.channel)
    status = updated.verification
    if status is None and updated.from_email is not None:
        status = _live_status(updated.from_email)
    updated = updated.model_copy(
        update={"verification": status, "owned_identities": owned_by(tenant_id, wanted, owners)}
    )
    if fields.credential is not None and current.platform_application_arn is not None:
        push.replace_credentials(
            current.platform_application_arn,
            fields.credential.get_secret_value(),
            _secret(fields.principal),
        )
    stored = store.replace_sender(tenant_id, current, updated)
    if fields.bot_token is not None:
        sender_secrets.put_secret(tenant_id, sender_id, fields.bot_token.get_secret_value())
    return stored


def delete_sender(tenant_id: str, sender_id: str) -> Sender:
    """Delete a sender, and with it its platform application or bot token."""
    removed = store.delete_sender(tenant_id, sender_id)
    if removed.platform_application_arn is not None:
        push.remove_application(removed.platform_application_arn)
    if removed.channel == "telegram":
        sender_secrets.delete_secret(tenant_id, sender_id)
    return removed


def checked(tenant_id: str, sender: Sender) -> Sender:
    """``sender`` with its live SES status (cached briefly), remembered when it changed."""
    if sender.from_email is None:
        return sender
    return store.record_verification(tenant_id, sender, _live_status(sender.from_email))


def verify_sender(tenant_id: str, sender_id: str, scope: VerifyScope) -> Sender:
    """Claim the sender's address or domain for ``tenant_id`` and ask SES to verify it."""
    sender = store.get_sender(tenant_id, sender_id)
    if sender.from_email is None:
        raise ValidationFailed("only email senders are verified with SES", field="channel")
    address, domain = email_identities(sender.from_email)
    target = address if scope == "address" else domain
    owners = ownership.owners([address, domain])
    check_claimable_by(tenant_id, target, owners, field="from_email")
    if owners.get(target) != tenant_id:
        with _asking_ses():
            made_outside = ses.known_to_ses(target.name)
        if made_outside:
            raise Conflict(
                f"SES identity '{target.name}' was not created through Herald; "
                "an admin can assign it to this tenant",
                field="from_email",
            )
        if ownership.claim(target, tenant_id, clock.now()) != tenant_id:
            raise IdentityOwned(target, field="from_email")  # lost a race to another tenant
        refresh_owned_identities(tenant_id)
    ses.request_verification(target.name)
    return checked(tenant_id, store.get_sender(tenant_id, sender_id))


def refresh_owned_identities(tenant_id: str) -> None:
    """Recompute every sender's ``owned_identities`` of a tenant from the owners now."""
    senders = store.all_senders(tenant_id)
    owners = ownership.owners([i for s in senders for i in s.identities])
    for sender in senders:
        store.record_owned_identities(
            tenant_id, sender, owned_by(tenant_id, sender.identities, owners)
        )


def transfer_identity(name: str, tenant_id: str) -> IdentityTransfer:
    """Give an identity (address, domain, number, sender id) to a tenant, whoever had it."""
    identity = Identity.parse(name)
    if not is_tenant_id(tenant_id):
        raise NotFound(f"tenant '{tenant_id}' not found", field="tenant_id")
    tenant_store.get_tenant(tenant_id)  # NotFound for an unknown tenant
    previous = ownership.transfer(identity, tenant_id, clock.now())
    for affected in dict.fromkeys(t for t in (previous, tenant_id) if t is not None):
        refresh_owned_identities(affected)
    return IdentityTransfer(
        identity=identity.name, kind=identity.kind, owner=tenant_id, previous_owner=previous
    )


def adopt_sms_identities(tenant_id: str) -> list[str]:
    """Claim, first come, the unowned numbers and sender ids of a tenant's SMS senders.

    For senders stored before identities were owned (a one-off after upgrading; run over
    the tenants oldest first). Email identities are never adopted: an admin transfers them.
    Returns the identities now owned by this tenant that were nobody's.
    """
    senders = [s for s in store.all_senders(tenant_id) if s.channel == "sms"]
    wanted = list(dict.fromkeys(i for s in senders for i in s.identities))
    owners = ownership.owners(wanted)
    adopted = [
        i.name
        for i in wanted
        if i not in owners and ownership.claim(i, tenant_id, clock.now()) == tenant_id
    ]
    refresh_owned_identities(tenant_id)
    return adopted

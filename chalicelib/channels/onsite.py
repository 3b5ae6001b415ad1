"""The on-site inbox: "sending" is storing the message in the contact's inbox.

Every contact has an inbox, so a contact's address on this channel is its id. The message
is delivered the moment it is stored, and the channel says so (a ``delivered`` receipt);
the contact reading it (``POST /v1/inbox/{id}/read``) is its ``opened``.
"""

from __future__ import annotations

from chalicelib.channels import receipts
from chalicelib.channels.base import OutboundMessage, SendResult
from chalicelib.domain import clock
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact
from chalicelib.domain.feedback import TAG_CAMPAIGN, TAG_MESSAGE
from chalicelib.domain.onsite import InboxMessage
from chalicelib.store.onsite_inbox import inbox_message_id, store_message


class OnsiteChannel:
    """A message in the contact's on-site inbox (DynamoDB, with a TTL)."""

    name: ChannelName = "onsite"

    def address_of(self, contact: Contact) -> str | None:
        return contact.id

    def send(self, message: OutboundMessage) -> SendResult:
        now = clock.now()
        herald_message_id = message.tags.get(TAG_MESSAGE) or None
        stored = store_message(
            message.tenant_id,
            message.to,
            InboxMessage(
                id=inbox_message_id(herald_message_id),
                title=message.subject,
                body=message.text,
                url=message.url,
                campaign_id=message.tags.get(TAG_CAMPAIGN),
                created_at=now,
            ),
            campaign_message_id=herald_message_id,
        )
        receipts.report(
            "delivered",
            self.name,
            message.tags,
            recipient=message.to,
            provider_message_id=stored.id,
            at=now,
        )
        return SendResult(provider_message_id=stored.id)


ONSITE = OnsiteChannel()

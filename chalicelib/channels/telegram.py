"""Telegram through the Bot API's ``sendMessage``, as the tenant's bot.

The bot's token is the sender's secret (chalicelib/store/sender_secrets.py); the request
goes through the SSRF-safe client (chalicelib/channels/http.py) to
``Settings.telegram_api_url`` (the embedded stack's fake Bot API locally). A contact's
address is ``telegram:<chat id>`` (its ``telegram_chat_id``), the form the suppression
list keeps. The Bot API's answers decide:

- 200 ``ok``: delivered to the chat (a ``delivered`` receipt); the provider message id is
  ``<chat id>:<message id>``;
- 429: throttled; ``parameters.retry_after`` seconds are waited before the next try, and
  a recipient whose wait outlasts the batch stays unsent and goes out with the batch's
  next attempt (deferred, never dropped);
- 403: the user blocked the bot (or never started it): the chat is suppressed, like an
  SMS opt-out (skipped ``opted_out``, not a failure);
- other 4xx: this message failed (the description says why); 5xx, no answer: retried.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.channels import receipts
from chalicelib.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from chalicelib.channels.http import RefusedTarget, post
from chalicelib.domain import clock
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import TELEGRAM_ADDRESS_PREFIX, Contact
from chalicelib.domain.delivery import SkipReason
from chalicelib.settings import get_settings
from chalicelib.store.sender_secrets import sender_secret

ANSWER_LIMIT = 64 * 1024  # a sendMessage answer is a few hundred bytes
DEFAULT_RETRY_AFTER = 1.0


def _answer(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class TelegramChannel:
    """A message to the contact's chat with the tenant's bot."""

    name: ChannelName = "telegram"

    def address_of(self, contact: Contact) -> str | None:
        chat = contact.telegram_chat_id
        return f"{TELEGRAM_ADDRESS_PREFIX}{chat}" if chat else None

    def send(self, message: OutboundMessage) -> SendResult:
        token = sender_secret(message.tenant_id, message.sender)
        if token is None:
            raise PermanentSendError("the Telegram sender has no bot token", code="NoBotToken")
        chat_id = message.to.removeprefix(TELEGRAM_ADDRESS_PREFIX)
        request: dict[str, Any] = {"chat_id": chat_id, "text": message.text}
        if message.parse_mode:
            request["parse_mode"] = message.parse_mode
        url = f"{get_settings().telegram_api_url.rstrip('/')}/bot{token}/sendMessage"
        try:
            outcome = post(
                url,
                json.dumps(request).encode(),
                {"Content-Type": "application/json"},
                read_limit=ANSWER_LIMIT,
            )
        except RefusedTarget as refused:
            raise PermanentSendError(
                f"the Bot API URL is refused: {refused}", code="Refused"
            ) from None
        answer = _answer(outcome.body)
        description = str(answer.get("description") or outcome.error or "no answer")[:300]
        if outcome.status is None or outcome.status >= 500:
            raise TransientSendError(f"Bot API: {description}", code="Unavailable")
        if outcome.status == 429:
            parameters = answer.get("parameters") or {}
            wait = parameters.get("retry_after", DEFAULT_RETRY_AFTER)
            raise TransientSendError(
                f"Bot API: {description}", code="TooManyRequests", retry_after=float(wait)
            )
        if outcome.status == 403:
            raise PermanentSendError(
                f"Bot API: {description}", code="Forbidden", skip=SkipReason.OPTED_OUT
            )
        result = answer.get("result") or {}
        if outcome.status != 200 or not answer.get("ok") or "message_id" not in result:
            raise PermanentSendError(f"Bot API: {description}", code=f"HTTP{outcome.status}")
        provider_message_id = f"{chat_id}:{result['message_id']}"
        receipts.report(
            "delivered",
            self.name,
            message.tags,
            recipient=message.to,
            provider_message_id=provider_message_id,
            at=clock.now(),
        )
        return SendResult(provider_message_id=provider_message_id)


TELEGRAM = TelegramChannel()

"""SMS through SNS ``Publish`` to a phone number.

The sender is either an alphanumeric sender id (``AWS.SNS.SMS.SenderID``, where the
destination country allows one) or an E.164 origination number
(``AWS.MM.SMS.OriginationNumber``). Campaign SMS are ``Promotional``; SNS routes and
prices them accordingly. SNS refuses numbers that opted out (``OptedOut``): that is the
recipient's choice, not a failure, so it is reported as a permanent error with
``skip=opted_out`` and the pipeline adds the number to Herald's own suppression list (moto
cannot simulate SNS opt-outs beyond numbers ending in 99, so Herald never relies on SNS
alone).
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import SkipReason

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TRANSIENT_CODES = frozenset(
    {"Throttled", "Throttling", "ThrottlingException", "InternalError", "ServiceUnavailable"}
)
_OPTED_OUT = "OptedOut"


def sms_attributes(message: OutboundMessage) -> dict[str, Any]:
    """SNS message attributes for the SMS type and the sender id or origination number."""
    attributes: dict[str, Any] = {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"}
    }
    if _E164.match(message.sender):
        attributes["AWS.MM.SMS.OriginationNumber"] = {
            "DataType": "String",
            "StringValue": message.sender,
        }
    elif message.sender:
        attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": message.sender}
    return attributes


class SmsChannel:
    """SMS to a contact's E.164 phone number through SNS."""

    name: ChannelName = "sms"

    def address_of(self, contact: Contact) -> str | None:
        return contact.phone

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            response = client("sns").publish(
                PhoneNumber=message.to,
                Message=message.text,
                MessageAttributes=sms_attributes(message),
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            text = error.response.get("Error", {}).get("Message", "") or str(error)
            if code == _OPTED_OUT:
                raise PermanentSendError(text, code=code, skip=SkipReason.OPTED_OUT) from error
            if code in _TRANSIENT_CODES:
                raise TransientSendError(text, code=code) from error
            raise PermanentSendError(text, code=code) from error
        except BotoCoreError as error:
            raise TransientSendError(f"SNS unreachable: {error}", code="Connection") from error
        return SendResult(provider_message_id=str(response["MessageId"]))


SMS = SmsChannel()

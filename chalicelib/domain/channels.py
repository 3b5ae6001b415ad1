"""The channels Herald delivers on: one list, named once, that every layer types against.

``email`` (SES), ``sms`` (SNS to a phone number), ``push`` (SNS mobile push to a
contact's registered device), ``telegram`` (the Bot API, to a contact's chat) and
``onsite`` (a per-contact inbox the tenant's site or app reads). Each has a template
kind (chalicelib/domain/templates.py), a sender kind (chalicelib/domain/senders.py) and
one implementation in chalicelib/channels/ (docs/channels.md).
"""

from __future__ import annotations

from typing import Literal, get_args

ChannelName = Literal["email", "sms", "push", "telegram", "onsite"]
CHANNEL_NAMES: tuple[ChannelName, ...] = get_args(ChannelName)

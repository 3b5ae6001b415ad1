"""Which implementation serves each channel name: the one module that knows them all.

It sits above ``base`` (what a channel is) and the channel modules (one implementation
each), so nothing below it imports it and no channel registers itself on import. A new
channel is a module implementing ``base.Channel`` and one entry here.
"""

from __future__ import annotations

from chalicelib.channels.base import Channel
from chalicelib.channels.email import EMAIL
from chalicelib.channels.onsite import ONSITE
from chalicelib.channels.push import PUSH
from chalicelib.channels.sms import SMS
from chalicelib.channels.telegram import TELEGRAM

CHANNELS: dict[str, Channel] = {
    channel.name: channel for channel in (EMAIL, SMS, PUSH, TELEGRAM, ONSITE)
}


def channel_for(name: str) -> Channel:
    """The channel called ``name``; KeyError for a channel Herald lacks."""
    try:
        return CHANNELS[name]
    except KeyError:
        raise KeyError(f"no channel {name!r}") from None

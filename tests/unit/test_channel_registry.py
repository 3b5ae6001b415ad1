"""The channel registry finds each built-in channel by name and refuses any other."""

from __future__ import annotations

import pytest

from chalicelib.channels.email import EMAIL
from chalicelib.channels.onsite import ONSITE
from chalicelib.channels.push import PUSH
from chalicelib.channels.registry import CHANNELS, channel_for
from chalicelib.channels.sms import SMS
from chalicelib.channels.telegram import TELEGRAM
from chalicelib.domain.channels import CHANNEL_NAMES


def test_each_built_in_channel_is_found_under_its_own_name():
    assert channel_for("email") is EMAIL
    assert channel_for("sms") is SMS
    assert channel_for("push") is PUSH
    assert channel_for("telegram") is TELEGRAM
    assert channel_for("onsite") is ONSITE
    assert sorted(CHANNELS) == sorted(CHANNEL_NAMES)


def test_a_channel_herald_lacks_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="carrier_pigeon"):
        channel_for("carrier_pigeon")

"""Per-tenant limits: what one tenant may spend of the operator's account.

Two sorts of limit. A *rate* (sends per day, test sends per hour, SMS per day, API
requests per minute) is counted in fixed windows aligned to the epoch (the day is the UTC
day): a charge either fits what is left of the window or is refused with the seconds until
the next window (``Retry-After``). A *count* (API keys, templates, senders, webhooks)
bounds how many of a thing a tenant keeps. SMS also has a list of destination countries
(ISO 3166 codes from the number's E.164 prefix; ``*`` allows every country).

Each tenant's limits are the operator's defaults (settings ``limit_*``) with the values an
admin set for that tenant on top; over any limit is 429 ``limit_exceeded`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from chalicelib.domain.errors import LimitExceeded, ValidationFailed
from chalicelib.domain.model import Model

RateName = Literal["sends_per_day", "test_sends_per_hour", "sms_per_day", "requests_per_minute"]
CountName = Literal["api_keys", "templates", "senders", "webhooks"]
WINDOW_SECONDS: dict[RateName, int] = {
    "sends_per_day": 86_400,
    "test_sends_per_hour": 3_600,
    "sms_per_day": 86_400,
    "requests_per_minute": 60,
}
ALL_COUNTRIES = "*"


class Limits(Model):
    """One tenant's limits (the defaults from settings where an admin set nothing)."""

    model_config = ConfigDict(extra="forbid")

    sends_per_day: int = Field(ge=0, description="Campaign messages (email and SMS) a UTC day.")
    test_sends_per_hour: int = Field(ge=0, description="Messages of /v1/campaigns/{id}/test.")
    sms_per_day: int = Field(ge=0, description="SMS a UTC day, campaigns and tests together.")
    requests_per_minute: int = Field(ge=1, description="API requests a minute (all keys).")
    sms_countries: list[str] = Field(
        description="ISO 3166 alpha-2 codes SMS may go to; ['*'] allows every country."
    )
    api_keys: int = Field(ge=1)
    templates: int = Field(ge=0)
    senders: int = Field(ge=0)
    webhooks: int = Field(ge=0)


class LimitChanges(Model):
    """What an admin sets for a tenant; a field set to null returns to the default."""

    model_config = ConfigDict(extra="forbid")

    sends_per_day: int | None = Field(default=None, ge=0)
    test_sends_per_hour: int | None = Field(default=None, ge=0)
    sms_per_day: int | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1)
    sms_countries: list[str] | None = Field(
        default=None, max_length=250, description="ISO 3166 alpha-2 codes, or ['*']."
    )
    api_keys: int | None = Field(default=None, ge=1)
    templates: int | None = Field(default=None, ge=0)
    senders: int | None = Field(default=None, ge=0)
    webhooks: int | None = Field(default=None, ge=0)

    def checked(self) -> LimitChanges:
        """Country codes upper-cased; ValidationFailed naming an unknown one."""
        if self.sms_countries is None:
            return self
        import phonenumbers  # here: its metadata is a slow import few invocations need

        codes = [c.strip().upper() for c in self.sms_countries]
        known = phonenumbers.SUPPORTED_REGIONS | {ALL_COUNTRIES}
        for index, code in enumerate(codes):
            if code not in known:
                raise ValidationFailed(
                    f"'{code}' is not an ISO 3166 country code", field=f"sms_countries.{index}"
                )
        return self.model_copy(update={"sms_countries": list(dict.fromkeys(codes))})


@dataclass(frozen=True)
class Window:
    """The fixed window a rate is counted in at one moment."""

    start: int  # epoch seconds
    seconds: int

    @staticmethod
    def of(name: RateName, now: datetime) -> Window:
        seconds = WINDOW_SECONDS[name]
        epoch = int(now.timestamp())
        return Window(start=epoch - epoch % seconds, seconds=seconds)

    def seconds_left(self, now: datetime) -> int:
        return max(1, self.start + self.seconds - int(now.timestamp()))


@dataclass(frozen=True)
class Allowance:
    """What a charge got: ``granted`` of ``requested`` (all or nothing), and when to retry."""

    name: RateName
    requested: int
    granted: int
    used: int
    limit: int
    retry_after: int

    @property
    def allowed(self) -> bool:
        return self.granted == self.requested

    def refusal(self) -> LimitExceeded:
        return LimitExceeded(
            f"{self.name} limit of {self.limit} reached ({self.used} used in this window); "
            f"retry in {self.retry_after} s",
            retry_after=self.retry_after,
            field=self.name,
        )


def check_room(name: CountName, current: int, limits: Limits) -> None:
    """LimitExceeded (naming the limit) when one more ``name`` would exceed the count."""
    limit: int = getattr(limits, name)
    if current >= limit:
        raise LimitExceeded(
            f"{name} limit of {limit} reached; delete one or ask an admin to raise it",
            retry_after=3_600,
            field=name,
        )


def country_of(number: str) -> str | None:
    """The ISO 3166 code of an E.164 number's country, or None when it has none."""
    import phonenumbers  # here: only SMS sends and SMS limits need its metadata

    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def sms_allowed(number: str, limits: Limits) -> bool:
    """Whether an SMS may go to ``number`` under the tenant's destination countries."""
    if ALL_COUNTRIES in limits.sms_countries:
        return True
    return country_of(number) in limits.sms_countries


def check_sms_destinations(numbers: list[str], limits: Limits, *, field: str) -> None:
    """ValidationFailed naming ``field.<index>`` of the first number outside the countries."""
    for index, number in enumerate(numbers):
        if not sms_allowed(number, limits):
            country = country_of(number) or "unknown"
            raise ValidationFailed(
                f"SMS to {country} numbers is not allowed for this tenant (sms_countries)",
                field=f"{field}.{index}",
            )

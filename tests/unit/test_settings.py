"""Settings come from ``HERALD_<FIELD>`` variables, converted and checked by pydantic."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.pipeline.messages import BatchMessage
from chalicelib.settings import MAX_SEND_BATCH, Settings


def test_fields_are_read_from_their_variables_and_converted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_STAGE", "prod")
    monkeypatch.setenv("HERALD_SEND_WORKERS", "12")
    monkeypatch.setenv("HERALD_SES_MAX_SEND_RATE", "50.5")
    monkeypatch.setenv("HERALD_ALLOW_LOOPBACK_CALLBACKS", "true")
    monkeypatch.setenv("HERALD_SIMULATOR_FAILING_NUMBERS", '["+15550100", "+15550101"]')

    settings = Settings()

    assert settings.stage == "prod"
    assert settings.send_workers == 12
    assert settings.ses_max_send_rate == 50.5
    assert settings.allow_loopback_callbacks is True
    assert settings.simulator_failing_numbers == ["+15550100", "+15550101"]
    assert settings.table_name == "herald-prod-table"


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_STAGE", "prod")
    monkeypatch.setenv("HERALD_REGION", "eu-west-1")

    settings = Settings(stage="qa")

    assert (settings.stage, settings.region) == ("qa", "eu-west-1")


def test_unset_variables_leave_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_SEND_BATCH_SIZE", raising=False)
    monkeypatch.setenv("HERALD_UNKNOWN_THING", "ignored")

    assert Settings().send_batch_size == Settings.model_fields["send_batch_size"].default


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("HERALD_STAGE", "Not A Stage", "stage"),
        ("HERALD_SEND_WORKERS", "0", "send_workers"),
        ("HERALD_PLAN_CHAINS", "12", "plan_chains"),  # neither divides nor is a multiple of 16
        ("HERALD_ALLOW_LOOPBACK_CALLBACKS", "perhaps", "allow_loopback_callbacks"),
        ("HERALD_SEND_BATCH_SIZE", "501", "send_batch_size"),  # more than a planner page
    ],
)
def test_a_bad_value_is_refused_naming_its_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


def test_a_send_batch_may_be_as_large_as_a_planner_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SEND_BATCH_SIZE", str(MAX_SEND_BATCH))
    size = Settings().send_batch_size
    recipients = [f"c_{n:04d}" for n in range(size)]

    batch = BatchMessage(tenant_id="t", campaign_id="cmp", batch_id="b", recipients=recipients)

    assert len(batch.recipients) == size == 500

"""The benchmark prices SES's Firehose puts as Firehose bills them: each record rounded up
to 5 KB (bench/prices.py names the page), one S3 object per put in moto."""

from __future__ import annotations

from bench import prices
from bench.meter import Tally, _tally_firehose


def test_each_record_is_billed_in_whole_5_kb_steps_and_a_put_writes_one_object():
    tally = Tally()
    _tally_firehose(tally, {"Records": [{"Data": b"x" * n} for n in (1, 5 * 1024, 5 * 1024 + 1)]})
    _tally_firehose(tally, {"Record": {"Data": b"{}\n"}})

    assert (tally.firehose_records, tally.firehose_billed_kb) == (4, 5 + 5 + 10 + 5)
    assert tally.firehose_bytes == 1 + 5 * 1024 + 5 * 1024 + 1 + 3
    assert tally.firehose_objects == 2
    merged = Tally()
    merged.add(tally)
    assert (merged.firehose_billed_kb, merged.firehose_objects) == (25, 2)


def test_a_million_small_events_cost_what_the_pricing_page_says():
    """1,000,000 records of up to 5 KB: 5,000,000 KB = 4.77 GB at $0.029."""
    usd = prices.usd("firehose_gb", 5 * 1_000_000 / 1024**2)
    assert round(usd, 3) == 0.138
    assert round(prices.usd("s3_get", 1_000_000), 2) == 0.40
    assert round(prices.usd("s3_put", 1_000_000), 2) == 5.00

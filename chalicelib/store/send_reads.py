"""What a flow's send step reads before it sends, in ONE BatchGetItem instead of two.

Its message's ledger record (an earlier attempt of the step may have sent it: then
nothing is sent again) and the suppression entries of its address (re-checked at send
time). Both are read strongly consistent: the record may have been written a moment ago
by the attempt that died, and a suppression by the feedback of a bounce.
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.store.ledger import MessageRecord, message_key
from chalicelib.store.suppression import suppressed_in, suppression_keys
from chalicelib.store.table import tenant_table


def record_and_suppressed(
    tenant_id: str, campaign_id: str, message_id: str, addresses: Iterable[str]
) -> tuple[MessageRecord | None, set[str]]:
    """The message's record if it has one, and which of ``addresses`` are suppressed."""
    record_key = message_key(campaign_id, message_id)
    suppression = suppression_keys(addresses)
    found = tenant_table(tenant_id).batch_get([record_key, *suppression], consistent=True)
    item = found.get(record_key)
    record = MessageRecord.model_validate(item) if item is not None else None
    return record, suppressed_in(suppression, found)

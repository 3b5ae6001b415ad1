"""Make moto scale like the services it imitates, without changing what they answer.

At 10^5 recipients, four places in moto 5.2 cost time that grows with the size of the
table or the depth of a queue, where AWS's does not; left alone, the benchmark would
measure moto's algorithms instead of Herald's calls (a 1,000-recipient broadcast took
190 s). Each patch below keeps moto's answers identical and only removes the waste:

1. DynamoDB Query on the table's own key sorted EVERY item of the table to find one
   partition (``Table.all_items``); with 300,000 items that is seconds per Query. Now a
   Query on the table's key looks only at its partition (AWS reads only that partition).
2. DynamoDB TransactWriteItems deep-copied the whole table before every transaction, to
   roll back on failure. Now only the items the transaction touches are copied, and they
   are what a failure puts back (a transaction writes nothing else).
3. SQS ReceiveMessage checked each message's retention by computing ALL queue
   attributes, whose approximate message counts walk the whole queue, three times per
   message: quadratic in the queue's depth (the "7 ms at depth 0, 300 ms at 2,000" the
   architecture brief measured). Now the retention period is read from the queue, and
   the approximate counts (still exact) take one clock reading per count, not one per
   message.
4. SNS minted a new X.509 certificate and made an RSA signature for every message it
   delivered to SQS (~2 ms each). Now every notification reuses one signature and
   certificate, which keeps the envelope's shape; Herald never verifies signatures of
   notifications that SQS delivers (IAM authenticates that delivery).
5. Every request listed the response class's methods with ``inspect.getmembers`` to find
   its handler. Now the list is computed once per class (classes do not change).

Even so, moto spends 1.5-2 ms of CPU on the simplest call here (request and response
serialisation on both sides), which bounds the benchmark's speed (bench/README.md).
``install()`` is idempotent. Only the benchmark uses it; the test suite runs stock moto.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.core import responses as core_responses
from moto.core.utils import iso_8601_datetime_with_milliseconds, unix_time_millis
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.sns.models import Subscription
from moto.sqs.models import Queue, SQSBackend

_state = threading.local()


@functools.cache
def install() -> None:
    """Apply the patches (see the module docstring), once per process."""
    _query_one_partition()
    _transactions_copy_what_they_touch()
    _sqs_without_quadratic_receive()
    _sns_signs_once()
    _handler_names_once()


# -- 1. Query reads one partition ---------------------------------------------------------
def _query_one_partition() -> None:
    query: Callable[..., Any] = Table.query
    all_items: Callable[[Table], list[Any]] = Table.all_items

    def query_partition(self: Table, *args: Any, **kwargs: Any) -> Any:
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        if index_name is not None or not self.range_key_attr:
            return query(self, *args, **kwargs)
        _state.partition = (self, args[0])
        try:
            return query(self, *args, **kwargs)
        finally:
            _state.partition = None

    def items_of_partition(self: Table) -> list[Any]:
        wanted = getattr(_state, "partition", None)
        if wanted is None or wanted[0] is not self:
            return all_items(self)
        partition = self.items.get(wanted[1], {})
        return sorted(partition.values(), key=lambda item: item.range_key)

    Table.query = query_partition  # type: ignore[method-assign]
    Table.all_items = items_of_partition  # type: ignore[method-assign]


# -- 2. Transactions back up only their own items ------------------------------------------
class _CopyWithoutTables:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: while one of our
    transactions runs, "deep-copying" a table returns the table itself (its items are
    backed up one by one instead)."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table) and getattr(_state, "in_transaction", False):
            return value
        return copy.deepcopy(value, memo)


def _transactions_copy_what_they_touch() -> None:
    backend_class = dynamodb_models.DynamoDBBackend
    transact: Callable[..., Any] = backend_class.transact_write_items
    dynamodb_models.copy = _CopyWithoutTables  # type: ignore[attr-defined,assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            backup = [_backup(self, entry) for entry in transact_items]
        except Exception:  # malformed: let moto raise its own error, the slow way
            return transact(self, transact_items)  # type: ignore[no-any-return]
        _state.in_transaction = True
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, before in reversed(backup):
                partition = table.items[hash_key]
                if before is None:
                    partition.pop(range_key, None)
                else:
                    partition[range_key] = before
            raise
        finally:
            _state.in_transaction = False

    backend_class.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _backup(backend: Any, entry: dict[str, Any]) -> tuple[Table, Any, Any, Any]:
    (_, operation), *_ = entry.items()
    table = backend.get_table(operation["TableName"])
    if not table.range_key_attr:
        raise ValueError("only tables with a sort key are backed up item by item")
    key = operation.get("Key") or {
        name: operation["Item"][name] for name in (table.hash_key_attr, table.range_key_attr)
    }
    hash_key, range_key = backend.get_keys_value(table, key)
    return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))


# -- 3. SQS receive is linear in the depth, not quadratic ----------------------------------
def _sqs_without_quadratic_receive() -> None:
    def retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
        queue: Any = self.get_queue(queue_name)
        retention_seconds = int(queue.message_retention_period)
        return bool(retention_seconds * 1000 + message.sent_timestamp > unix_time_millis())

    def count(test: Callable[[Any, float], bool]) -> property:
        def counted(queue: Queue) -> int:
            now = unix_time_millis()
            return sum(1 for message in queue._messages if test(message, now))

        return property(counted)

    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    Queue.approximate_number_of_messages = count(  # type: ignore[method-assign,assignment]
        lambda m, now: now > m.visible_at and not now < m.delayed_until
    )
    Queue.approximate_number_of_messages_delayed = count(  # type: ignore[method-assign,assignment]
        lambda m, now: now < m.delayed_until
    )
    Queue.approximate_number_of_messages_not_visible = count(  # type: ignore[method-assign,assignment]
        lambda m, now: not now > m.visible_at
    )


# -- 4. SNS signs once ----------------------------------------------------------------------
def _sns_signs_once() -> None:
    post_data: Callable[..., dict[str, Any]] = Subscription.get_post_data
    signed: dict[str, dict[str, Any]] = {}  # per topic

    def reuse_signature(
        self: Subscription,
        message: str,
        message_id: str,
        subject: str | None,
        message_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        first = signed.get(self.topic.arn)
        if first is None:
            first = signed[self.topic.arn] = post_data(self, message, message_id, subject)
        data = {
            **first,
            "MessageId": message_id,
            "TopicArn": self.topic.arn,
            "Message": message,
            "Timestamp": iso_8601_datetime_with_milliseconds(),
        }
        if subject:
            data["Subject"] = subject
        if message_attributes:
            data["MessageAttributes"] = message_attributes
        return data

    Subscription.get_post_data = reuse_signature  # type: ignore[method-assign]


# -- 5. handler names once per class ---------------------------------------------------------
def _handler_names_once() -> None:
    names: Any = core_responses
    names.method_names_from_class = functools.cache(names.method_names_from_class)

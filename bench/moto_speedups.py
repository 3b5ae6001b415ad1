"""Make moto scale like the services it imitates, and cheaper per call, without changing
what it answers.

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

The rest make moto's fixed work per call cheaper, each by keeping what depends only on
things that do not change (a shape, an expression's text, a class, a name) instead of
working it out again on every call; their docstrings say why each answer is the same:

6. and 7. The response serializer works out each member's names once, and skips the
   members a DynamoDB answer does not have (it asked for all ten of every attribute value).
8. An UpdateExpression is parsed once per text, and the validator's copy of it unpickled.
9. A ConditionExpression is parsed once per text, names and values (an UpdateItem parsed
   it twice), and tokenised once per text.
10. The ten validators of an update expression walk its tree without rebuilding their
    dispatch table and repeating abstract ``isinstance`` checks at every node.
11. Camel case is converted to snake case once per name (every request's action, every
    queue attribute on every SendMessage).
12. An item being built is sized once per attribute, not once per attribute per attribute.
13. SendMessage read the queue's ``ContentBasedDeduplication`` from ALL its attributes,
    whose approximate message counts walk the whole queue: queueing N messages was
    quadratic in N (the flow sweep's 3,125 wakes cost 4 ms each at the end). While a
    message is being sent, the queue's attributes are only the one SendMessage reads.

What remains, about 0.5 ms of moto's CPU on the simplest call here (building a werkzeug
request, routing, serialising), plus botocore's ~0.4 ms on the client side (which Herald
pays in Lambda too), bounds the benchmark's speed (bench/README.md). ``install()`` is
idempotent. Only the benchmark uses it; the test suite runs stock moto, and
tests/integration/test_bench.py runs one scenario through both and compares every answer.
"""

from __future__ import annotations

import copy
import functools
import pickle
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from moto.core import responses as core_responses
from moto.core import serialize
from moto.core import utils as core_utils
from moto.core.constants import MISSING
from moto.core.utils import iso_8601_datetime_with_milliseconds, unix_time_millis
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing import validators as expression_validators
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.sns.models import Subscription
from moto.sqs.models import Queue, SQSBackend

_state = threading.local()


@functools.cache
def install() -> None:
    """Apply the patches (see the module docstring), once per process."""
    _query_one_partition()
    _transactions_copy_what_they_touch()
    _sqs_without_quadratic_receive()
    _sqs_send_reads_one_attribute()
    _sns_signs_once()
    _handler_names_once()
    _serializer_remembers_member_names()
    _serializer_skips_absent_dict_members()
    _update_expressions_parsed_once()
    _conditions_parsed_once()
    _validators_walk_faster()
    _camel_case_converted_once()
    _items_sized_once_when_built()


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


# -- 13. SQS send reads the one attribute it needs -----------------------------------------
def _sqs_send_reads_one_attribute() -> None:
    """While ``send_message`` runs (``send_message_batch`` calls it per entry), a queue's
    ``attributes`` are what it reads of them: ``ContentBasedDeduplication``, which only a
    FIFO queue has (``Queue.FIFO_ATTRIBUTES``), as moto renders a boolean."""
    all_attributes: Callable[[Queue], dict[str, Any]] = Queue.attributes.fget  # type: ignore[attr-defined]
    send: Callable[..., Any] = SQSBackend.send_message

    def attributes(queue: Queue) -> dict[str, Any]:
        if not getattr(_state, "sending", False):
            return all_attributes(queue)
        if not queue.fifo_queue:
            return {}
        fifo: Any = queue  # moto sets the FIFO attributes by name (setattr)
        return {"ContentBasedDeduplication": str(fifo.content_based_deduplication).lower()}

    def send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
        _state.sending = True
        try:
            return send(self, *args, **kwargs)
        finally:
            _state.sending = False

    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]


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


# -- 6. the response serializer looks up each member's names once ----------------------------
_NAMES_REMEMBERED = 20_000  # (class, shape, member) triples; error shapes are made afresh
_member_names_seen: dict[tuple[Any, ...], tuple[str, ...]] = {}
_stock_serializer: dict[str, Callable[..., Any]] = {}


def _serializer_remembers_member_names() -> None:
    """Moto 5.2 serialises every answer by walking the botocore output shape; for each member
    of each structure (10 per DynamoDB attribute value, so ~150 per item) it builds an
    ``AttributePickerContext`` (joining the serialiser's path into a string) and asks six
    alias providers, each a fresh object, which names the member may have on the object,
    then tries those names on the object in order (a member found under none is ``None``).

    Those names depend only on the object's class (when it has no ``Meta`` aliases), the
    member's shape, that shape's parent structure and the member's key: all fixed. So they
    are worked out by moto's own picker the first time and reused, and the value is picked
    with the same names in the same order; moto's response transformers (which need the
    path) still apply as before. Anything else (a custom picker or alias list, an object
    with ``Meta``, a serialiser with its own ``get_value``) goes the stock way.
    """
    serializer: Any = serialize.ResponseSerializer
    _stock_serializer["get_value"] = serializer.get_value
    serializer.get_value = _get_value


def _picks_by_member_names(serializer: Any, value: Any) -> bool:
    picker = serializer._value_picker
    return (
        type(picker) is serialize.XFormedAttributePicker
        and picker.alias_providers is serialize.DEFAULT_ALIAS_PROVIDERS
        and type(serializer).get_value is _get_value
        and not hasattr(value, "Meta")
    )


def _member_names(serializer: Any, value: Any, key: str, shape: Any) -> tuple[str, ...]:
    remembered = (value.__class__, shape, getattr(shape, "parent", None), key)
    found = _member_names_seen.get(remembered)
    if found is None:
        if len(_member_names_seen) >= _NAMES_REMEMBERED:
            _member_names_seen.clear()
            _dict_members_seen.clear()
        context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
        found = tuple(serializer._value_picker.get_possible_keys(context))
        _member_names_seen[remembered] = found
    return found


def _get_value(serializer: Any, value: Any, key: str, shape: Any) -> Any:
    if not _picks_by_member_names(serializer, value):
        return _stock_serializer["get_value"](serializer, value, key, shape)
    for name in _member_names(serializer, value, key, shape):
        picked = core_utils.get_value(value, name, MISSING)
        if picked is not MISSING:
            break
    else:
        picked = None
    transformers = serializer._value_picker.response_transformers
    if transformers:
        key_path = f"{'.'.join(serializer.path)}.{key}"
        for transform_path, transform in transformers.items():
            if key_path.endswith(transform_path):
                return transform(picked)
    return picked


# -- 7. the serializer skips the members a dict does not have --------------------------------
_DictMembers = tuple[list[tuple[str, Any, tuple[str, ...]]], dict[str, list[int]]]
_dict_members_seen: dict[Any, _DictMembers | None] = {}
_NOT_SEEN = object()


def _serializer_skips_absent_dict_members() -> None:
    """Even with their names known (6.), moto asks for every member of a structure: ten for
    each DynamoDB attribute value, of which one is there. For a structure given as a plain
    ``dict`` (every DynamoDB answer), a member none of whose names is a key of the dict is
    picked as ``None`` and left out, so when no response transformer could turn that
    ``None`` into something, only the members with a name among the dict's keys are
    serialised, in the shape's order, each with the value under its first name present:
    what moto writes. Other values, serialisers that pick members their own way, and names
    moto would read as dotted paths go the stock way."""
    serializer: Any = serialize.ResponseSerializer
    _stock_serializer["structure"] = serializer._serialize_type_structure
    _stock_serializer["member"] = serializer._serialize_structure_member
    serializer._serialize_type_structure = _serialize_structure


def _dict_members(serializer: Any, value: dict[Any, Any], shape: Any) -> _DictMembers | None:
    """The members of ``shape`` with their names on a dict, and the members each name can
    stand for; ``None`` if a name holds a dot (which moto reads as a path)."""
    plan = _dict_members_seen.get(shape, _NOT_SEEN)
    if plan is not _NOT_SEEN:
        return plan  # type: ignore[return-value]
    members = [
        (key, member, _member_names(serializer, value, key, member))
        for key, member in shape.members.items()
    ]
    owners: dict[str, list[int]] = {}
    for index, (_, _, names) in enumerate(members):
        for name in names:
            owners.setdefault(name, []).append(index)
    plan = None if any("." in name for name in owners) else (members, owners)
    _dict_members_seen[shape] = plan
    return plan  # type: ignore[return-value]


def _serialize_structure(
    serializer: Any, serialized: Any, value: Any, shape: Any, key: str
) -> None:
    stock = _stock_serializer["structure"]
    if (
        type(value) is not dict
        or type(serializer)._serialize_structure_member is not _stock_serializer["member"]
        or not _picks_by_member_names(serializer, value)
        or serializer._value_picker.response_transformers
    ):
        return stock(serializer, serialized, value, shape, key)  # type: ignore[no-any-return]
    for member in shape.members.values():
        member.parent = shape
    plan = _dict_members(serializer, value, shape)
    if plan is None:
        return stock(serializer, serialized, value, shape, key)  # type: ignore[no-any-return]
    members, owners = plan
    wrapper = serializer.MAP_TYPE() if key else serialized
    for index in sorted({index for name in value if name in owners for index in owners[name]}):
        member_key, member_shape, names = members[index]
        picked = value[next(name for name in names if name in value)]
        if picked is not None:
            serializer._serialize(wrapper, picked, member_shape, member_key)
    if key:
        serializer._default_serialize(serialized, wrapper, shape, key)
    return None


# -- 8. an update expression is parsed once --------------------------------------------------
_EXPRESSIONS_REMEMBERED = 5_000


def _update_expressions_parsed_once() -> None:
    """Moto parses an UpdateExpression twice per UpdateItem (the request handler, to list the
    placeholders it uses, then the backend), tokenising the string and building an AST each
    time; the backend's validator then deep-copies the AST (``Validator.__init__``) to
    resolve, normalise and execute the copy. The deep copy alone costs more than a parse.

    The AST depends on the string alone, and nothing changes the parsed tree: the request
    handler only reads it (``find_clauses``) and the validator works on its copy. So one
    tree per distinct string is kept and handed out again, with its pickle: the validator's
    copy of a kept tree is unpickled from it, which builds the same objects, attributes and
    parent links as ``deepcopy`` (both go through ``__reduce_ex__``), in C. Any other value
    the validators copy is deep-copied as before. A string that fails to parse is not
    kept: it raises moto's own error every time.
    """
    stock_make: Callable[[Any, str], Any] = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, Any] = {}
    pickled: dict[int, tuple[Any, bytes]] = {}  # id of a kept tree -> the tree, its pickle

    def make(cls: Any, expression: str) -> Any:
        if cls is not UpdateExpressionParser:
            return stock_make(cls, expression)
        tree = parsed.get(expression)
        if tree is None:
            tree = stock_make(cls, expression)
            if len(parsed) >= _EXPRESSIONS_REMEMBERED:
                parsed.clear()
                pickled.clear()
            frozen = _pickled(tree)
            if frozen is None:
                return tree
            parsed[expression] = tree
            pickled[id(tree)] = (tree, frozen)
        return tree

    def copy_for_validation(value: Any, memo: dict[int, Any] | None = None) -> Any:
        kept = pickled.get(id(value)) if memo is None else None
        if kept is None or kept[0] is not value:
            return copy.deepcopy(value, memo)
        return pickle.loads(kept[1])

    UpdateExpressionParser.make = classmethod(make)  # type: ignore[method-assign,assignment]
    expression_validators.deepcopy = copy_for_validation  # type: ignore[attr-defined,assignment]


def _pickled(tree: Any) -> bytes | None:
    """The pickle of a parsed tree, or ``None`` if a tree ever held something that cannot be
    pickled (it is then simply not kept)."""
    try:
        return pickle.dumps(tree, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


# -- 9. a condition is parsed once per request (and per distinct text, names and values) -----
def _conditions_parsed_once() -> None:
    """Moto parses a ConditionExpression (also a FilterExpression) into a tree of operations
    in five passes over its tokens, after splitting the text into tokens with a list of
    regular expressions one token at a time; an UpdateItem parses the same condition twice
    (the request handler, for the placeholders it uses, then the backend), and Herald's
    writes repeat a few conditions.

    The tree depends only on the text, the names and the values (which the parser only looks
    up by placeholder). So after moto parses a condition, the tree is pickled and kept under
    the text and the ``repr`` of the names and values, with the placeholders the parse found;
    a parse of the same text, names and values gets its own tree unpickled from it (the same
    objects and values a parse builds, sharing nothing with an earlier request, whose values
    an update may have stored in an item) and records the same placeholders. The tokens of
    each distinct text are kept too, for the parses of new values (each parse gets its own
    copies: the later passes consume them). A condition that fails to parse is not kept and
    raises every time.
    """
    parser: Any = ConditionExpressionParser
    stock_parse: Callable[[Any], Any] = parser.parse
    stock_lex: Callable[[Any], Any] = parser._lex_condition_expression
    parsed: dict[tuple[Any, str, str], tuple[bytes, tuple[str, ...], tuple[str, ...]]] = {}
    lexed: dict[str, tuple[Any, ...]] = {}

    def parse(self: Any) -> Any:
        remembered = (
            self.condition_expression,
            repr(self.expression_attribute_names),
            repr(self.expression_attribute_values),
        )
        found = parsed.get(remembered)
        if found is None:
            names_before = len(self.expr_attr_names_found)
            values_before = len(self.expr_attr_values_found)
            tree = stock_parse(self)
            frozen = _pickled(tree)
            if frozen is not None:
                if len(parsed) >= _EXPRESSIONS_REMEMBERED:
                    parsed.clear()
                parsed[remembered] = (
                    frozen,
                    tuple(self.expr_attr_names_found[names_before:]),
                    tuple(self.expr_attr_values_found[values_before:]),
                )
            return tree
        frozen, names, values = found
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return pickle.loads(frozen)

    def lex(self: Any) -> Any:
        text = self.condition_expression
        tokens = lexed.get(text)
        if tokens is None:
            tokens = tuple(stock_lex(self))
            if len(lexed) >= _EXPRESSIONS_REMEMBERED:
                lexed.clear()
            lexed[text] = tokens
        return deque(token._replace(children=[]) for token in tokens)

    parser.parse = parse
    parser._lex_condition_expression = lex


# -- 10. the validators walk the tree without asking the same questions ---------------------
def _validators_walk_faster() -> None:
    """Moto validates an update expression by walking its tree ten times, once per validator
    (``DepthFirstTraverser.traverse_node_recursively``); at every node each walk calls the
    validator's ``pre_processing_of_child`` hook (a no-op for nine of them), builds a dict
    of bound methods to list the node classes it processes, and asks ``isinstance`` of those
    classes, all abstract base classes (slow checks).

    The classes a validator processes are the keys written in its ``_processing_map``, the
    same for every instance of its class, and whether a node is a ``Node``, or one of those
    classes, depends on the node's class alone (moto registers no virtual subclasses). So
    the answers are kept per class, and the no-op hook is not called; the walk visits,
    processes and replaces the nodes in moto's order, with moto's own ``process``.
    """
    traverser: Any = DepthFirstTraverser
    stock_hook = traverser.pre_processing_of_child
    is_node: dict[type, bool] = {}
    processes: dict[tuple[type, type], bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        node_class = type(node)
        node_like = is_node.get(node_class)
        if node_like is None:
            node_like = is_node[node_class] = isinstance(node, Node)
        if not node_like:
            return node
        parent_node = node.parent
        if node.children is not None:
            hook = (
                None
                if type(self).pre_processing_of_child is stock_hook
                else self.pre_processing_of_child
            )
            for index, child_node in enumerate(node.children):
                if hook is not None:
                    hook(node, index)
                self.traverse_node_recursively(child_node, index)
        kinds = (type(self), node_class)
        wanted = processes.get(kinds)
        if wanted is None:
            wanted = processes[kinds] = isinstance(node, self.nodes_to_be_processed())
        if wanted:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    traverser.traverse_node_recursively = traverse_node_recursively


# -- 11. camel case is converted once per name -------------------------------------------------
def _camel_case_converted_once() -> None:
    """Moto turns names such as ``ReceiveMessageWaitTimeSeconds`` into snake case one
    character at a time: for every request's action, and for each of the ~14 attributes of
    a queue that every SendMessage (so every SNS delivery to SQS) reads. The result depends
    on the name alone, so each name's is kept (moto's own function computes it); the
    function is replaced in every loaded moto module that imported it, and in
    ``moto.core.utils`` for the modules moto loads later."""
    stock: Callable[[Any], Any] = core_utils.camelcase_to_underscores
    converted: dict[str, str] = {}

    def camelcase_to_underscores(argument: Any) -> Any:
        if type(argument) is not str:
            return stock(argument)
        found = converted.get(argument)
        if found is None:
            found = stock(argument)
            if len(converted) < _NAMES_REMEMBERED:
                converted[argument] = found
        return found

    for name, module in list(sys.modules.items()):
        if name.startswith("moto") and getattr(module, "camelcase_to_underscores", None) is stock:
            module.camelcase_to_underscores = camelcase_to_underscores  # type: ignore[attr-defined]


# -- 12. an item is sized once as it is built ------------------------------------------------
_ITEM_SIZE_LIMIT = 405_000  # moto's LimitedSizeDict limit (between AWS's 409 and 410 KB)


def _items_sized_once_when_built() -> None:
    """Moto refuses an item over its size limit by checking, as each attribute goes into
    the item (``LimitedSizeDict.__setitem__``), the size of everything already in it plus
    the new attribute: building an item of n attributes sizes attributes n²/2 times (~150
    ``size()`` calls for one of Herald's ledger records, a third of a PutItem).

    While ``Item.__init__`` fills a fresh item (each name once), the size already in it is
    the running sum of what was added, so that sum stands in for the recount: each attribute
    is converted and sized exactly when moto would, the same limit refuses the same
    attribute with the same error, and the attributes go in in the same order. Later writes
    to an item (updates) go through moto's own check."""
    stock_init: Callable[..., None] = Item.__init__

    def build(self: Item, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        if type(attrs) is not dict or not all(type(name) is str for name in attrs):
            return stock_init(self, hash_key, range_key, attrs)
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = LimitedSizeDict()
        size = 0
        for name, value in attrs.items():
            typed = DynamoType(value)
            added = bytesize(name) + typed.size()
            if size + added > _ITEM_SIZE_LIMIT:
                raise ItemSizeTooLarge
            dict.__setitem__(self.attrs, name, typed)
            size += added
        return None

    Item.__init__ = build  # type: ignore[method-assign]

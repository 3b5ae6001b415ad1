"""How long a segment preview over 100,000 contacts takes, and what memory it needs.

Loads the contacts through the real bulk path (``POST /v1/imports`` with the rows of
bench.import_contacts, then every chunk through the control-queue handler), saves a nested
segment, and times ``POST /v1/segments/{id}/preview`` through the API gate: a full
page-by-page walk of the tenant's contacts with the compiled rule tree. It also times the
evaluator alone (the compiled predicate over contacts already in memory), to show how
little of a preview is rule evaluation. Prints the figures and writes
``bench/out/segment_preview.json``.

    python -m bench.segment_preview [--contacts 100000]

Peak RSS is the whole process's, moto's in-memory table included; ``rss_growth_mb`` is
how much the peak rose during the preview itself, which a streaming walk keeps small and
independent of the number of contacts.

Two costs of moto 5.2.5's Query are its own, not DynamoDB's, and the bench removes them
with ``partition_indexed_queries`` (``--plain-moto`` runs without it):
- it sorts EVERY item of the table on every call before picking the partition asked for,
  so walking n contacts in pages costs O(n^2 log n) (10,000 contacts: 94 s; 100,000 would
  take hours) where DynamoDB's cost is linear: the patch hands moto's own Query only the
  items of the queried partition;
- it keeps a reference to every model instance it ever creates (``instances_tracked``),
  including the copy of each item a Query returns, so memory grows by every item read
  (about 2.3 KB per contact): the patch forgets the copies a Query made.
Results are identical either way.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import moto

from bench.import_contacts import ROOT, build_rows, peak_rss_mb

OUT = ROOT / "bench" / "out" / "segment_preview.json"
EVALUATIONS = 100_000

# Users whose name starts with "User 1" (1, 10-19, 100-199, ...): 11,111 of 100,000.
RULES: dict[str, Any] = {
    "condition": "AND",
    "rules": [
        {"field": "attributes.plan", "operator": "eq", "value": "gold"},
        {"field": "first_name", "operator": "starts_with", "value": "user 1"},
        {
            "condition": "OR",
            "rules": [
                {"field": "tags", "operator": "in", "value": ["bench", "vip"]},
                {"field": "lead_score", "operator": "gte", "value": 50},
            ],
        },
        {"field": "events.purchase.count", "operator": "lt", "value": 3},
        {"field": "created_at", "operator": "after", "value": "-30d"},
    ],
}


@contextmanager
def partition_indexed_queries() -> Iterator[None]:
    """Make moto's base-table Query read one partition and forget its copies (see above)."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None or self.range_key_attr is None:
            return original(self, hash_key, *args, **kwargs)
        partition = sorted(self.items.get(hash_key, {}).values(), key=_range_key)
        tracked = len(Item.instances_tracked)
        self.all_items = lambda: partition
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items
            del Item.instances_tracked[tracked:]

    Table.query = query
    try:
        yield
    finally:
        Table.query = original


def _range_key(item: Any) -> Any:
    return item.range_key.cast_value


def expected_matches(contacts: int) -> int:
    return sum(str(i).startswith("1") for i in range(contacts))


def run(contacts: int, plain_moto: bool = False) -> dict[str, Any]:
    from chalice.test import Client

    import app as herald
    from chalicelib.domain.segments import SegmentGroup, compile_tree
    from chalicelib.local.poller import drain
    from chalicelib.local.provision import provision
    from chalicelib.store import tenants
    from chalicelib.store.contacts import scan_contacts

    with moto.mock_aws(), nullcontext() if plain_moto else partition_indexed_queries():
        provision()
        tenant, _, key = tenants.create_tenant("bench")
        body, content_type, _ = build_rows(contacts, "csv", 0)
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with Client(herald.app, stage_name="dev", project_dir=str(ROOT)) as client:
            started = time.perf_counter()
            response = client.http.post(
                "/v1/imports", headers={**auth, "Content-Type": content_type}, body=body
            )
            assert response.status_code == 202, response.body
            del body
            drain(["control"])
            imported = time.perf_counter()
            segment = {"name": "Bench: gold users named User 1...", **RULES}
            created = client.http.post("/v1/segments", headers=auth, body=json.dumps(segment))
            assert created.status_code == 201, created.body
            segment_id = json.loads(created.body)["id"]
            rss_before = peak_rss_mb()
            preview_started, preview_cpu_started = time.perf_counter(), time.process_time()
            response = client.http.post(
                f"/v1/segments/{segment_id}/preview",
                headers=auth,
                body=json.dumps({"sample_size": 10}),
            )
            preview_seconds = time.perf_counter() - preview_started
            preview_cpu_seconds = time.process_time() - preview_cpu_started
            assert response.status_code == 200, response.body
            preview = json.loads(response.body)
            rss_after = peak_rss_mb()
            page, _ = scan_contacts(tenant.id, None, 500)
        test = compile_tree(SegmentGroup.model_validate(RULES), datetime.now(UTC))
        evaluation_started = time.process_time()
        for i in range(EVALUATIONS):
            test(page[i % len(page)])
        evaluation_seconds = time.process_time() - evaluation_started
    return {
        "contacts": contacts,
        "import_seconds": round(imported - started, 2),
        "preview_seconds": round(preview_seconds, 2),
        "preview_cpu_seconds": round(preview_cpu_seconds, 2),
        "contacts_per_second": round(contacts / preview_seconds),
        "matched": preview["count"],
        "count_correct": preview["count"] == expected_matches(contacts),
        "sample": len(preview["sample"]),
        "evaluator_us_per_contact": round(evaluation_seconds / EVALUATIONS * 1e6, 2),
        "evaluator_share_of_preview_cpu": round(
            evaluation_seconds / EVALUATIONS * contacts / preview_cpu_seconds, 4
        ),
        "peak_rss_before_preview_mb": rss_before,
        "peak_rss_mb": rss_after,
        "rss_growth_mb": round(rss_after - rss_before, 1),
        "backend": "moto in-process (moto 5, one process, no network)"
        + ("" if plain_moto else ", partition-indexed Query"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--plain-moto", action="store_true", help="moto's O(table) Query")
    args = parser.parse_args(argv)
    result = run(args.contacts, args.plain_moto)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result.items():
        print(f"{name:>30}: {value}")
    print(f"{'written':>30}: {OUT.relative_to(ROOT)}")
    return 0 if result["count_correct"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

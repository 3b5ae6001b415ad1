"""The index of live flow triggers that events and segment changes read."""

from __future__ import annotations

from chalicelib.domain.tenants import new_tenant_id
from chalicelib.store import campaigns, flow_triggers
from tests.flow_kit import put_flow

WF = {
    "nodes": [
        {"id": "order", "kind": "trigger.event", "config": {"event_type": "order.placed"}},
        {"id": "vip", "kind": "trigger.segment_entry", "config": {"segment_id": "seg_vip"}},
        {"id": "hi", "kind": "send", "config": {"channel": "email", "template_ids": ["tpl_1"]}},
    ],
    "edges": [{"source": "order", "target": "hi"}, {"source": "vip", "target": "hi"}],
}


def test_live_flows_publish_their_triggers_and_finished_ones_withdraw(aws: None) -> None:
    t1, t2 = new_tenant_id(), new_tenant_id()
    flow = put_flow(t1, WF)
    assert flow.steps[0].id == "hi" and flow.number >= 1
    assert [t.node_id for t in flow_triggers.event_triggers(t1, "order.placed")] == ["order"]
    assert flow_triggers.watched_segments(t1) == {"seg_vip"}
    assert flow_triggers.live_triggers(t2) == []
    done = campaigns.get_campaign(t1, flow.id).model_copy(update={"status": "completed"})
    flow_triggers.publish(t1, done)
    assert flow_triggers.live_triggers(t1) == []
    put_flow(t1, WF, status="draft")
    assert flow_triggers.live_triggers(t1) == []
    paused = put_flow(t1, WF, status="paused")
    assert len(flow_triggers.live_triggers(t1)) == 2
    flow_triggers.withdraw(t1, paused.id)
    assert flow_triggers.live_triggers(t1) == []

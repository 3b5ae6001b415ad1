"""The flow runtime's pure domain: workflow graphs, the step executor, the send policy.

Triggered sends, sequences and workflows all walk a graph per contact (docs/flows.md).
``graph`` and ``nodes`` define and check the graph, ``timing`` its units of time,
``step`` decides each transition, ``policy`` when a message may go out, and ``timers``
where a waiting enrolment is filed. Nothing here reads the clock or talks to AWS.
"""

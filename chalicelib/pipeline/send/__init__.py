"""Sending: delivers one batch of a campaign's recipients, exactly once each.

A ``send.batch`` message names up to ``send_batch_size`` contact ids. Handling it:
1. a batch due later (quiet hours) goes back on the queue with a delay; a paused
   campaign's batch too (growing delays); other statuses that cannot send drop it;
2. take the batch's lease (one conditional write): a duplicate delivery is dropped or
   retried after the lease; an attempt after a crash takes the lease over;
3. read the contacts and their ledger records (two BatchGetItems) and the suppression
   list (one call); recipients recorded by an earlier attempt count as they were recorded,
   and are never sent again;
4. recipients inside their quiet hours go into child batches, stored on the batch item,
   counted in ``batches_spawned`` (once) and queued with a delay; every retry counts and
   queues again what earlier attempts stored;
5. the rest are sent concurrently (``send_concurrency`` threads) at the paced rate: for
   each, render (a failure is the recipient's own ``render_error``), the send policy
   (frequency caps decided and counted atomically, only for a capped campaign), deadline
   check after the pacer's slot, provider call, then one conditional ledger put;
6. a recipient left without an outcome (paused, out of time, throttled to the end, the
   quota spent) hands the whole batch back; otherwise the callbacks go out, the counts
   are added exactly once, the batch is marked done, and the completion check (O(1),
   from the counters) may move the campaign to ``sent``; a redelivery of a done batch
   runs that check again.
A crash repeats only the sends in flight at that moment, at most ``send_concurrency``
messages (docs/engine.md, per crash point). Pause and cancel are re-checked every few
seconds while a batch runs, so both take effect mid-batch.

Modules: ``batch`` (the handler and one attempt at a batch), ``pacing`` (the pacer, the
stop watch, provider retries), ``compose`` (content and rendering), ``screen`` (who may
get a message, shared with the planner), ``completion`` (when a campaign is sent),
``trial`` (test sends), ``policy`` (whether a message may go out now: quiet hours,
lateness, caps; shared with the flow worker).
"""

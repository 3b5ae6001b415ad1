"""A send worker in its own process, to be killed with SIGKILL mid-batch.

``python -m tests.send_child <START iso> <received SQS message as JSON>`` runs Herald's
real send consumer for that message against the moto server named by
``HERALD_AWS_ENDPOINT_URL``, on a clock frozen at START (so the parent can later act
after the lease). Every SendEmail first waits 20 ms (provider latency, so that the
threads are caught mid-send) and prints ``accepted`` once SES took the message.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any


def main() -> None:
    from chalicelib.aws import client
    from chalicelib.domain import clock
    from chalicelib.local.poller import invoke, sqs_event

    start, message = datetime.fromisoformat(sys.argv[1]), json.loads(sys.argv[2])
    clock.install(clock.FrozenClock(start))
    events = client("sesv2").meta.events

    def latency(**_: Any) -> None:
        time.sleep(0.02)

    def accepted(**_: Any) -> None:
        print("accepted", flush=True)

    events.register("before-call.sesv2.SendEmail", latency)
    events.register("after-call.sesv2.SendEmail", accepted)
    invoke("send", sqs_event("send", [message]))
    print("finished", flush=True)


if __name__ == "__main__":
    main()

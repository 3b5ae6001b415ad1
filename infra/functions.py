"""What infra adds to the functions chalice generates: names, settings, timeouts, batch failures.

These are deep-merged onto chalice's ``AWS::Serverless::Function`` resources, so every key here
is added to (or overrides) chalice's and nothing chalice generated is lost: in particular each
SQS event keeps chalice's queue reference and gains ``ReportBatchItemFailures``, which chalice
cannot set itself (aws/chalice#2029) and without which one failed record would retry its whole
batch.
"""

from __future__ import annotations

from chalicelib.observability import SERVICE, metrics
from infra.naming import SES_MAX_SEND_RATE, Json, Stack, ref, setting_variable
from infra.policy import access_policy_id, consume_policy_id
from infra.sms_status import forwarder_overrides

LOG_RETENTION_DAYS = 30


def function_overrides(stack: Stack) -> Json:
    """Per function: the merge onto chalice's resource, plus its log group."""
    consumers = {spec.handler: spec for spec in stack.resources.queues}
    forwarder = stack.resources.sms_status_logs.handler
    rendered: Json = {}
    for handler in stack.handlers:
        function_id = stack.function_id(handler)
        log_group_id = f"{function_id}LogGroup"
        # Permissions and the log group exist before the function (and so before its event
        # source mapping, which Lambda validates against the role when it is created).
        depends_on = [access_policy_id(stack, handler), log_group_id]
        properties: Json = {
            "FunctionName": stack.function_name(handler),
            # Lambda records each invocation's segments itself; Herald ships no X-Ray SDK.
            "Tracing": "Active",
            "Environment": {"Variables": environment(stack)},
        }
        if handler == forwarder:
            properties.update(forwarder_overrides(stack))
        spec = consumers.get(handler)
        if spec is not None:
            depends_on.append(consume_policy_id(stack, spec))
            properties["Timeout"] = spec.consumer_timeout_seconds
            if spec.memory_mb is not None:
                properties["MemorySize"] = spec.memory_mb
            event: Json = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
            if spec.role == "send":
                # Each send worker paces itself to ses_max_send_rate / send_workers, so the
                # account rate holds only if no more than send_workers run at once.
                properties["ReservedConcurrentExecutions"] = stack.settings.send_workers
                # The mapping does not know the reserved concurrency: without a maximum it
                # would invoke past it, and a throttled batch goes back to the queue for a
                # whole visibility timeout (12 minutes). Its minimum is 2.
                event["ScalingConfig"] = {"MaximumConcurrency": max(2, stack.settings.send_workers)}
            properties["Events"] = {stack.sqs_event_id(spec): {"Properties": event}}
        rendered[function_id] = {"DependsOn": depends_on, "Properties": properties}
        rendered[log_group_id] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": f"/aws/lambda/{stack.function_name(handler)}",
                "RetentionInDays": LOG_RETENTION_DAYS,
            },
        }
    return rendered


def environment(stack: Stack) -> Json:
    """The variables ``chalicelib.settings`` and Powertools read, the same for every function."""
    return {
        setting_variable("stage"): stack.settings.stage,
        setting_variable("account_id"): ref("AWS::AccountId"),
        setting_variable("region"): ref("AWS::Region"),
        setting_variable("public_base_url"): stack.public_base_url(),
        setting_variable("ses_max_send_rate"): ref(SES_MAX_SEND_RATE),
        # The stack has the role and the forwarder's permission (infra.push_status).
        setting_variable("push_delivery_status"): "true",
        # What infra was rendered with, so the workers pace to the concurrency reserved for
        # them and the planner splits audiences as configured.
        setting_variable("send_workers"): str(stack.settings.send_workers),
        setting_variable("plan_chains"): str(stack.settings.plan_chains),
        # Which way SES's events come (the resources above were made for it).
        setting_variable("ses_events_transport"): stack.settings.ses_events_transport,
        "POWERTOOLS_SERVICE_NAME": SERVICE,
        "POWERTOOLS_METRICS_NAMESPACE": metrics.namespace,
    }

"""Mobile push through SNS: a platform application per push sender, an endpoint per device.

A tenant's push sender is an SNS platform application Herald makes (``make_application``)
from the APNs or FCM credentials the tenant gives; SNS keeps them and Herald keeps only
the application's ARN. A device (``POST /v1/contacts/{id}/devices``) becomes an endpoint
of that application (``register_endpoint``: SNS answers the same endpoint for the same
token, so registering again is idempotent). A contact's address on this channel is its
newest device's endpoint.

Each application logs the delivery status of every push (``Success/FailureFeedbackRoleArn``
and a success sample rate of 100%) to its two CloudWatch Logs groups, which Herald makes
and subscribes the status forwarder to when it makes the application (the stack cannot:
the groups are named after applications made at run time). The forwarder queues each
record for the feedback worker, which counts the push delivered or failed
(docs/feedback.md, "Push delivery status"). The stack turns this on
(``Settings.push_delivery_status``); without it applications log nothing.

Publishing to an endpoint SNS has disabled (the app was uninstalled, the token expired)
or deleted fails for good: the device is taken off the contact and its endpoint deleted,
and the message is reported failed with that reason.
"""

from __future__ import annotations

import json
import re

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.channels.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from chalicelib.domain.channels import ChannelName
from chalicelib.domain.contacts import Contact
from chalicelib.domain.delivery import parse_message_id
from chalicelib.domain.errors import NotFound
from chalicelib.domain.feedback import TAG_MESSAGE
from chalicelib.resources import PushStatusLogsSpec, herald_resources
from chalicelib.settings import get_settings
from chalicelib.store.contacts import get_contact, remove_device

_TRANSIENT_CODES = frozenset(
    {"Throttled", "Throttling", "ThrottlingException", "InternalError", "ServiceUnavailable"}
)
_GONE_CODES = frozenset({"EndpointDisabled", "NotFound"})
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:\S+) already exists")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# -- platform applications and endpoints -----------------------------------------------
def application_name(tenant_id: str, sender_id: str) -> str:
    """``herald-<stage>-<tenant>-<sender>``: Herald's own (IAM grants on the prefix), and
    whose they are, at a glance."""
    return f"{get_settings().prefix}-{tenant_id}-{sender_id}"[:256]


def _credentials(credential: str, principal: str | None) -> dict[str, str]:
    attributes = {"PlatformCredential": credential}
    if principal:
        attributes["PlatformPrincipal"] = principal
    return attributes


def _status_logs() -> PushStatusLogsSpec:
    return herald_resources(get_settings()).push_status_logs


def _application_of(application_arn: str) -> tuple[str, str]:
    """``arn:aws:sns:<region>:<account>:app/<platform>/<name>`` → (platform, name)."""
    _, platform, name = application_arn.split(":", 5)[5].split("/", 2)
    return platform, name


def _status_log_groups(platform: str, name: str) -> tuple[str, str]:
    settings = get_settings()
    return PushStatusLogsSpec.log_groups(settings.region, settings.account_id, platform, name)


def _delivery_status_attributes() -> dict[str, str]:
    """What makes SNS log each push's delivery status (nothing when it is off)."""
    spec = _status_logs()
    if not spec.enabled:
        return {}
    return {
        "SuccessFeedbackRoleArn": spec.role_arn,
        "FailureFeedbackRoleArn": spec.role_arn,
        "SuccessFeedbackSampleRate": str(spec.success_sampling_rate),
    }


def _subscribe_status_logs(platform: str, name: str) -> None:
    """Make the application's two status log groups (SNS would make them only when it
    first logs, too late for a subscription) and subscribe the forwarder to each. Every
    step is idempotent: a retried sender creation, or an update, makes them true again."""
    spec = _status_logs()
    if not spec.enabled:
        return
    logs = client("logs")
    for group in _status_log_groups(platform, name):
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError as error:
            if _code(error) != "ResourceAlreadyExistsException":
                raise
        logs.put_retention_policy(logGroupName=group, retentionInDays=spec.log_retention_days)
        logs.put_subscription_filter(
            logGroupName=group,
            filterName=spec.filter_name,
            filterPattern="",
            destinationArn=spec.forwarder_arn,
        )


def make_application(name: str, platform: str, credential: str, principal: str | None) -> str:
    """Create the SNS platform application, logging its delivery status to log groups the
    forwarder is subscribed to (made first: no push may be sent before they exist); its ARN."""
    _subscribe_status_logs(platform, name)
    try:
        response = client("sns").create_platform_application(
            Name=name,
            Platform=platform,
            Attributes={**_credentials(credential, principal), **_delivery_status_attributes()},
        )
    except ClientError:  # e.g. credentials SNS refused: no application, no log groups
        _remove_status_logs(platform, name)
        raise
    return str(response["PlatformApplicationArn"])


def replace_credentials(application_arn: str, credential: str, principal: str | None) -> None:
    """New credentials; the delivery-status logging is made true again with them (an
    application made before it was turned on gets it here)."""
    _subscribe_status_logs(*_application_of(application_arn))
    client("sns").set_platform_application_attributes(
        PlatformApplicationArn=application_arn,
        Attributes={**_credentials(credential, principal), **_delivery_status_attributes()},
    )


def remove_application(application_arn: str) -> None:
    """Delete the application, then its status log groups (with their subscriptions)."""
    client("sns").delete_platform_application(PlatformApplicationArn=application_arn)
    _remove_status_logs(*_application_of(application_arn))


def _remove_status_logs(platform: str, name: str) -> None:
    if not _status_logs().enabled:
        return
    logs = client("logs")
    for group in _status_log_groups(platform, name):
        try:
            logs.delete_log_group(logGroupName=group)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise


def register_endpoint(application_arn: str, token: str, contact_id: str) -> str:
    """The device's endpoint (the same one for the same token), enabled and naming
    ``contact_id``. SNS refuses to create a second endpoint for a token whose endpoint has
    other attributes (another contact's phone, now this one's) and names that endpoint in
    its message: it is taken over, as AWS's guide for mobile tokens says."""
    sns = client("sns")
    try:
        response = sns.create_platform_endpoint(
            PlatformApplicationArn=application_arn, Token=token, CustomUserData=contact_id
        )
        endpoint = str(response["EndpointArn"])
    except ClientError as error:
        existing = _EXISTING_ENDPOINT.search(str(error.response.get("Error", {}).get("Message")))
        if _code(error) != "InvalidParameter" or existing is None:
            raise
        endpoint = existing[1]
    # A re-registered token may belong to an endpoint SNS disabled: the app is back.
    sns.set_endpoint_attributes(
        EndpointArn=endpoint, Attributes={"Enabled": "true", "CustomUserData": contact_id}
    )
    return endpoint


def payload(message: OutboundMessage) -> str:
    """The per-platform message for ``MessageStructure=json``: APNs's ``aps`` alert and
    FCM's ``notification``, each with the template's data beside it."""
    data = dict(message.data)
    alert = {"title": message.subject, "body": message.text}
    apns = json.dumps({"aps": {"alert": alert}, **data})
    gcm = json.dumps({"notification": alert, "data": data})
    return json.dumps({"default": message.text, "APNS": apns, "APNS_SANDBOX": apns, "GCM": gcm})


# -- the channel -------------------------------------------------------------------------
class PushChannel:
    """A notification to the contact's newest registered device."""

    name: ChannelName = "push"

    def address_of(self, contact: Contact) -> str | None:
        return contact.devices[-1].endpoint_arn if contact.devices else None

    def send(self, message: OutboundMessage) -> SendResult:
        sns = client("sns")
        try:
            response = sns.publish(
                TargetArn=message.to, Message=payload(message), MessageStructure="json"
            )
        except ClientError as error:
            code = _code(error)
            text = error.response.get("Error", {}).get("Message", "") or str(error)
            if code in _GONE_CODES:
                _forget_device(message)
                raise PermanentSendError(
                    f"the device's endpoint is {'disabled' if code != 'NotFound' else 'gone'} "
                    f"(app uninstalled or token expired); the device was removed: {text}",
                    code=code,
                ) from error
            if code in _TRANSIENT_CODES:
                raise TransientSendError(text, code=code) from error
            raise PermanentSendError(text, code=code) from error
        except BotoCoreError as error:
            raise TransientSendError(f"SNS unreachable: {error}", code="Connection") from error
        return SendResult(provider_message_id=str(response["MessageId"]))


def _forget_device(message: OutboundMessage) -> None:
    """Take the dead endpoint's device off the contact and delete the endpoint (both
    idempotent). A test send names no contact: its endpoint is only deleted."""
    contact_id = _contact_of(message)
    if contact_id is not None:
        try:
            contact = get_contact(message.tenant_id, contact_id)
        except NotFound:
            contact = None
        for device in contact.devices if contact else []:
            if device.endpoint_arn == message.to:
                remove_device(message.tenant_id, contact_id, device.token)
    try:
        client("sns").delete_endpoint(EndpointArn=message.to)
    except ClientError as error:
        if _code(error) != "NotFound":
            raise


def _contact_of(message: OutboundMessage) -> str | None:
    """The contact a campaign message is for (Herald's message id names it), else None."""
    try:
        _, contact_id, _ = parse_message_id(message.tags.get(TAG_MESSAGE, ""))
    except ValueError:
        return None
    return contact_id


PUSH = PushChannel()

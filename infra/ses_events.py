"""SES's sending events through Amazon Data Firehose to S3 (``ses_events_transport`` "firehose").

The configuration set's event destination (``infra.services``) puts each event on the
Firehose stream with the publisher role; the stream (DirectPut, an extended S3
destination) buffers the records, 1 MiB or 60 s, into uncompressed objects under
``ses-events/`` in the events bucket, with the delivery role; the bucket notifies the
feedback queue of each object (``s3:ObjectCreated:*`` on that prefix), once the queue's
policy lets S3 send (``infra.services`` adds that statement to the queue's one policy,
and the bucket depends on it: S3 checks it may send when the notification is saved);
the feedback worker reads the object (``read_ses_events`` in ``infra.policy``). Why:
docs/feedback.md, "How SES's events travel". With transport "sns" none of this exists.
"""

from __future__ import annotations

from chalicelib.resources import SesEventsStreamSpec
from infra.buckets import bucket_arn, private_bucket, tls_only
from infra.naming import Json, Stack, arn, get_att, ref

SES_EVENTS_BUCKET = "SesEventsBucket"
SES_EVENTS_BUCKET_POLICY = "SesEventsBucketPolicy"
SES_EVENTS_STREAM = "SesEventsStream"
SES_EVENTS_DELIVERY_ROLE = "SesEventsDeliveryRole"
SES_EVENTS_PUBLISHER_ROLE = "SesEventsPublisherRole"

FIREHOSE_SERVICE = "firehose.amazonaws.com"
SES_SERVICE = "ses.amazonaws.com"
S3_SERVICE = "s3.amazonaws.com"
# What Firehose does with an S3 destination: write objects (in parts when large, aborting
# a failed upload), find the bucket's region and its unfinished uploads. It reads nothing.
DELIVERY_ACTIONS = (
    "s3:AbortMultipartUpload",
    "s3:GetBucketLocation",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:PutObject",
)


def ses_events_resources(stack: Stack) -> Json:
    """The stream, its bucket and the two roles; nothing with transport "sns"."""
    spec = stack.resources.configuration_set.stream
    if spec is None:
        return {}
    return {
        SES_EVENTS_BUCKET: _bucket(stack, spec),
        SES_EVENTS_BUCKET_POLICY: {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref(SES_EVENTS_BUCKET),
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [tls_only(spec.bucket)]},
            },
        },
        SES_EVENTS_DELIVERY_ROLE: _delivery_role(spec),
        SES_EVENTS_STREAM: {
            "Type": "AWS::KinesisFirehose::DeliveryStream",
            "Properties": {
                "DeliveryStreamName": spec.stream,
                "DeliveryStreamType": "DirectPut",
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": get_att(SES_EVENTS_BUCKET, "Arn"),
                    "RoleARN": get_att(SES_EVENTS_DELIVERY_ROLE, "Arn"),
                    "Prefix": spec.object_prefix,
                    "BufferingHints": {
                        "SizeInMBs": spec.buffer_mib,
                        "IntervalInSeconds": spec.buffer_seconds,
                    },
                    # The worker reads the records as SES wrote them, one JSON a line.
                    "CompressionFormat": "UNCOMPRESSED",
                },
            },
        },
        SES_EVENTS_PUBLISHER_ROLE: _publisher_role(stack, spec),
    }


def feedback_queue_policy_id(stack: Stack) -> str:
    """The feedback queue's policy, which must exist before the bucket's notification."""
    return f"{stack.queue_id('feedback')}Policy"


def s3_may_send(spec: SesEventsStreamSpec) -> Json:
    """The queue policy statement letting the events bucket (and no other) notify the queue."""
    return {
        "Effect": "Allow",
        "Principal": {"Service": S3_SERVICE},
        "Action": "sqs:SendMessage",
        "Condition": {
            # The bucket's ARN by name, not GetAtt: the bucket depends on this policy.
            "ArnEquals": {"aws:SourceArn": bucket_arn(spec.bucket)},
            "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
        },
    }


def _bucket(stack: Stack, spec: SesEventsStreamSpec) -> Json:
    return {
        "Type": "AWS::S3::Bucket",
        "DependsOn": [feedback_queue_policy_id(stack)],
        "Properties": {
            **private_bucket(spec.bucket, spec.keep_days),
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Event": "s3:ObjectCreated:*",
                        "Queue": stack.queue_arn(spec.delivers_to),
                        "Filter": {
                            "S3Key": {"Rules": [{"Name": "prefix", "Value": spec.object_prefix}]}
                        },
                    }
                ]
            },
        },
    }


def _trust(service: str, condition: Json) -> Json:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ],
    }


def _delivery_role(spec: SesEventsStreamSpec) -> Json:
    """The role Firehose writes the bucket with, trusted by this account's streams only."""
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": spec.delivery_role,
            # Firehose passes the account as the external id (its developer guide's trust).
            "AssumeRolePolicyDocument": _trust(
                FIREHOSE_SERVICE, {"StringEquals": {"sts:ExternalId": ref("AWS::AccountId")}}
            ),
            "Policies": [
                {
                    "PolicyName": "write-ses-events-bucket",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "DeliverToBucket",
                                "Effect": "Allow",
                                "Action": list(DELIVERY_ACTIONS),
                                "Resource": [bucket_arn(spec.bucket), bucket_arn(spec.bucket, "*")],
                            }
                        ],
                    },
                }
            ],
        },
    }


def _publisher_role(stack: Stack, spec: SesEventsStreamSpec) -> Json:
    """The role SES puts records on the stream with: only for this account's configuration
    set, only on this stream."""
    configuration_set = stack.resources.configuration_set.name
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": spec.publisher_role,
            "AssumeRolePolicyDocument": _trust(
                SES_SERVICE,
                {
                    "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                    "ArnLike": {
                        "aws:SourceArn": arn("ses", f"configuration-set/{configuration_set}")
                    },
                },
            ),
            "Policies": [
                {
                    "PolicyName": "put-ses-events",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "PutSesEvents",
                                "Effect": "Allow",
                                "Action": ["firehose:PutRecordBatch"],
                                "Resource": [get_att(SES_EVENTS_STREAM, "Arn")],
                            }
                        ],
                    },
                }
            ],
        },
    }


def stream_destination(stack: Stack) -> Json:
    """The configuration set's event destination body for the stream."""
    return {
        "KinesisFirehoseDestination": {
            "IAMRoleARN": get_att(SES_EVENTS_PUBLISHER_ROLE, "Arn"),
            "DeliveryStreamARN": get_att(SES_EVENTS_STREAM, "Arn"),
        }
    }

"""SES inbound for replies (docs/api-seed-001.md, "Stop on reply").

Every mail received for the reply domain is stored in the inbound bucket by an S3
action that notifies the inbound topic (subscribed to the replies queue: a TopicSpec
like the feedback topic). Why not SES's SNS action, which puts the mail itself in the
notification: it carries at most 150 KB and a larger mail is bounced, while a receipt
rule cannot choose its actions by size; the S3 action takes any mail SES accepts (up
to 40 MB) and the worker reads the object. The worker reads SNS-action notifications
too (``content`` inline), which is what the embedded stack's simulator sends.

A receipt rule set is active only once ``SetActiveReceiptRuleSet`` names it (CloudFormation
cannot): docs/deploy.md's step. Without ``reply_domain`` no rule set is made and
replies are matched by nothing (the bucket and topic stay, empty).
"""

from __future__ import annotations

from infra.buckets import bucket_arn, private_bucket, tls_only
from infra.naming import Json, Stack, ref, sub

INBOUND_BUCKET = "InboundMailBucket"
INBOUND_BUCKET_POLICY = "InboundMailBucketPolicy"
RECEIPT_RULE_SET = "ReplyReceiptRuleSet"
RECEIPT_RULE = "ReplyReceiptRule"


def reply_resources(stack: Stack) -> Json:
    inbound = stack.resources.inbound
    rendered: Json = {
        INBOUND_BUCKET: {
            "Type": "AWS::S3::Bucket",
            # A reply is handled within minutes; the mail is kept a while to debug.
            "Properties": private_bucket(inbound.bucket, inbound.keep_days),
        },
        INBOUND_BUCKET_POLICY: {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref(INBOUND_BUCKET),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "SesInboundStoresMail",
                            "Effect": "Allow",
                            "Principal": {"Service": "ses.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": bucket_arn(inbound.bucket, f"{inbound.object_prefix}*"),
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": sub("${AWS::AccountId}")}
                            },
                        },
                        tls_only(inbound.bucket),
                    ],
                },
            },
        },
    }
    if inbound.reply_domain:
        rendered.update(_receipt_rules(stack))
    return rendered


def _receipt_rules(stack: Stack) -> Json:
    inbound = stack.resources.inbound
    return {
        RECEIPT_RULE_SET: {
            "Type": "AWS::SES::ReceiptRuleSet",
            "Properties": {"RuleSetName": inbound.rule_set},
        },
        RECEIPT_RULE: {
            "Type": "AWS::SES::ReceiptRule",
            "DependsOn": [INBOUND_BUCKET_POLICY],  # SES checks it may write when saving
            "Properties": {
                "RuleSetName": ref(RECEIPT_RULE_SET),
                "Rule": {
                    "Name": f"{inbound.rule_set}-store-and-notify",
                    "Enabled": True,
                    "ScanEnabled": True,
                    "TlsPolicy": "Optional",
                    "Recipients": [inbound.reply_domain],
                    "Actions": [
                        {
                            "S3Action": {
                                "BucketName": ref(INBOUND_BUCKET),
                                "ObjectKeyPrefix": inbound.object_prefix,
                                "TopicArn": ref(stack.topic_id(inbound.topic_name)),
                            }
                        }
                    ],
                },
            },
        },
    }

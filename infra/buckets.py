"""What every bucket of Herald's stack has: no public access, SSE-S3, objects that expire,
and a policy refusing requests without TLS."""

from __future__ import annotations

from infra.naming import Json, sub


def bucket_arn(name: str, objects: str = "") -> Json:
    """The bucket's ARN, or with ``objects`` (``"*"``, ``"replies/*"``) its objects'."""
    return sub(f"arn:${{AWS::Partition}}:s3:::{name}" + (f"/{objects}" if objects else ""))


def private_bucket(name: str, keep_days: int) -> Json:
    """The properties of a bucket nobody outside the account reads, objects kept ``keep_days``."""
    return {
        "BucketName": name,
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
        "LifecycleConfiguration": {
            "Rules": [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": keep_days}]
        },
    }


def tls_only(name: str) -> Json:
    """The bucket policy statement denying every request made without TLS."""
    return {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn(name), bucket_arn(name, "*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }

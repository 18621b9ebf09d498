"""A store in one bucket of S3 or an S3-compatible server (MinIO, Ceph, moto...), by boto3."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    NoCredentialsError,
)

from storage import MissingObject, Storage, StorageError, check_key

_MISSING_BUCKET = {"404", "NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


class S3Storage(Storage):
    """Objects in ``bucket``. ``endpoint_url`` empty means AWS itself; empty credentials mean
    boto3's usual chain (environment, config files, instance role)."""

    def __init__(
        self,
        bucket: str,
        endpoint_url: str = "",
        region: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        config = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            # Servers other than AWS rarely resolve bucket subdomains: address by path there.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # A client is thread-safe once made; the session that makes it is not, so make it here.
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(
            "put", self.client.put_object, Key=check_key(key), Body=data, ContentType=content_type
        )

    def get(self, key: str) -> bytes:
        response = self._call("get", self.client.get_object, Key=check_key(key))
        try:
            return response["Body"].read()
        except BotoCoreError as error:
            raise StorageError(f"S3 get {key}: {error}") from None

    def delete(self, key: str) -> None:
        self._call("delete", self.client.delete_object, Key=check_key(key))

    def check(self) -> None:
        self._call("check", self.client.head_bucket)

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"S3 bucket {self.bucket} at {where}"

    def _call(self, action: str, method: Any, **params: Any) -> Any:
        """Call the S3 API on our bucket; every failure becomes a one-line StorageError."""
        try:
            return method(Bucket=self.bucket, **params)
        except ClientError as error:
            raise self._client_error(action, error) from None
        except NoCredentialsError:
            raise StorageError("no S3 credentials are configured") from None
        except (EndpointConnectionError, ConnectionError):
            where = self.endpoint_url or "the AWS endpoint"
            raise StorageError(f"S3 endpoint {where} is unreachable") from None
        except BotoCoreError as error:
            raise StorageError(f"S3 {action} failed: {error}") from None

    def _client_error(self, action: str, error: ClientError) -> StorageError:
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if action == "get" and code in ("NoSuchKey", "404"):
            return MissingObject(f"no such object in S3 bucket {self.bucket!r}")
        if code in _MISSING_BUCKET or (action == "check" and status == 404):
            return StorageError(f"S3 bucket {self.bucket!r} does not exist")
        if code in _DENIED or status in (401, 403):
            return StorageError(
                f"access to S3 bucket {self.bucket!r} was denied; check the access key and secret"
            )
        return StorageError(f"S3 {action} on bucket {self.bucket!r} failed: {code or status}")

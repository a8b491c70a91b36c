"""The embedded engine supervisor: every engine really works, stops cleanly and keeps its data across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import msgspec
import nats
import pytest
import redis
from botocore.config import Config

from shared.config import Settings
from shared.dev.process import EngineError, port_is_free, process_identity
from shared.dev.s3 import DEFAULT_BUCKET
from shared.dev.stack import EmbeddedStack, engine_variables

ROOT = Path(__file__).resolve().parents[3]
STRIPE_KEY = "sk_test_tribe"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="inspects processes through /proc")

# Values for engines a test does not want started; nothing ever connects to them.
FAKE_EXTERNAL = {
    "TRIBE_DATABASE_URL": "postgresql://someone:pw@db.example:5432/tribe",
    "TRIBE_REDIS_URL": "redis://cache.example:6379/0",
    "TRIBE_NATS_URL": "nats://bus.example:4222",
    "TRIBE_S3_ENDPOINT_URL": "https://s3.example",
    "TRIBE_S3_ACCESS_KEY": "AKEXAMPLE",
    "TRIBE_S3_SECRET_KEY": "secret-example",
    "TRIBE_S3_BUCKET": "example-media",
    "TRIBE_STRIPE_API_BASE": "https://stripe.example",
    "TRIBE_SMTP_URL": "smtp://mail.example:25",
    "TRIBE_PUSH_URL": "https://push.example/--/api/v2/push/send",
}


def external_except(*wanted: str) -> dict[str, str]:
    """FAKE_EXTERNAL without the variables of the engines ``wanted`` started for real."""
    return {k: v for k, v in FAKE_EXTERNAL.items() if k not in wanted}


# --- process inspection ------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies count as gone)."""
    return process_identity(pid) is not None


def recorded_pids(data_dir: Path) -> dict[int, str]:
    """The engine processes the stack recorded as running, pid to engine name."""
    try:
        entries = json.loads((data_dir / "pids.json").read_text())
    except FileNotFoundError:
        return {}
    return {int(e["pid"]): str(e["name"]) for e in entries}


def processes_in_groups(groups: set[int]) -> list[int]:
    """Processes whose process group is one of ``groups`` (engines lead their own group; Postgres has workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            found.append(int(entry.name))
    return found


def processes_mentioning(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- engine clients ----------------------------------------------------------------------------


def s3_client(env: Mapping[str, str]) -> Any:
    """A boto3 client for the stack's S3."""
    return boto3.client(
        "s3",
        endpoint_url=env["TRIBE_S3_ENDPOINT_URL"],
        aws_access_key_id=env["TRIBE_S3_ACCESS_KEY"],
        aws_secret_access_key=env["TRIBE_S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def pg(env: Mapping[str, str], *statements: str) -> list[list[Any]]:
    """Run statements in the ``tribe`` database; return each one's rows."""

    async def run() -> list[list[Any]]:
        conn = await asyncpg.connect(env["TRIBE_DATABASE_URL"])
        try:
            return [[tuple(r) for r in await conn.fetch(s)] for s in statements]
        finally:
            await conn.close()

    return asyncio.run(run())


# --- the shared stack --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of the module's stack."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def stack(stack_dir: Path) -> Iterator[EmbeddedStack]:
    """Every engine, started once for the module (external={} so a developer's TRIBE_* variables don't leak in)."""
    statuses: list[str] = []
    running = EmbeddedStack(stack_dir, external={}, on_status=statuses.append)
    began = time.monotonic()
    running.start()
    print(f"\nstack started in {time.monotonic() - began:.1f} s:\n  " + "\n  ".join(statuses))
    try:
        yield running
    finally:
        running.stop()


def test_start_returns_every_engine_variable(stack: EmbeddedStack) -> None:
    env = stack.env
    assert set(env) == engine_variables()
    ports = stack.ports
    assert env["TRIBE_DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{ports['postgres']}/tribe"
    assert env["TRIBE_REDIS_URL"] == f"redis://127.0.0.1:{ports['redis']}/0"
    assert env["TRIBE_NATS_URL"] == f"nats://127.0.0.1:{ports['nats']}"
    assert env["TRIBE_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{ports['s3']}"
    assert env["TRIBE_S3_BUCKET"] == "tribe-media"
    assert env["TRIBE_STRIPE_API_BASE"] == f"http://127.0.0.1:{ports['stripe']}"
    assert env["TRIBE_SMTP_URL"] == f"smtp://127.0.0.1:{ports['smtp']}"
    assert env["TRIBE_PUSH_URL"] == f"http://127.0.0.1:{ports['push']}/--/api/v2/push/send"
    assert len(set(ports.values())) == len(ports)
    assert json.loads((stack.data_dir / "ports.json").read_text()) == ports
    for name in ("postgres", "redis", "nats", "s3", "stripe", "smtp", "push"):
        assert (stack.logs_dir / f"{name}.log").stat().st_size > 0


def test_engines_listen_on_loopback_only(stack: EmbeddedStack) -> None:
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, hex_port = local.rsplit(":", 1)
                listening.add((address, int(hex_port, 16)))
    for name, port in stack.ports.items():
        addresses = {a for a, p in listening if p == port}
        assert addresses == {"0100007F"}, f"{name} listens on {addresses}"  # 127.0.0.1, little-endian hex


def test_postgres_runs_queries_and_has_the_extensions(stack: EmbeddedStack) -> None:
    rows = pg(
        stack.env,
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "CREATE EXTENSION IF NOT EXISTS cube",
        "CREATE EXTENSION IF NOT EXISTS earthdistance",
        "SELECT current_database(), current_setting('server_version_num')::int >= 180000",
        "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector",
        "SELECT similarity('tribe', 'tribes') > 0.5",
        "SELECT earth_distance(ll_to_earth(52.52, 13.40), ll_to_earth(48.86, 2.35)) BETWEEN 870000 AND 890000",
        "SELECT upper('café'), 'b' > 'a'",
    )
    assert rows[4] == [("tribe", True)]
    assert rows[5] == [(1.0,)]
    assert rows[6] == [(True,)]
    assert rows[7] == [(True,)]
    assert rows[8] == [("CAFÉ", True)]  # Unicode-aware case mapping without OS locales


def test_redis_sets_and_gets(stack: EmbeddedStack) -> None:
    client = redis.Redis.from_url(stack.env["TRIBE_REDIS_URL"])
    try:
        client.set("tribe:test", "value")
        assert client.get("tribe:test") == b"value"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        client.close()


def test_nats_publishes_and_jetstream_stores(stack: EmbeddedStack) -> None:
    async def run() -> None:
        nc = await nats.connect(stack.env["TRIBE_NATS_URL"])
        try:
            sub = await nc.subscribe("chat.test")
            await nc.publish("chat.test", b"hello")
            msg = await sub.next_msg(timeout=2)
            assert msg.data == b"hello"
            js = nc.jetstream()
            await js.add_stream(name="TEST_EVENTS", subjects=["test.events.>"])
            ack = await js.publish("test.events.one", b"stored")
            assert ack.stream == "TEST_EVENTS"
        finally:
            await nc.close()

    asyncio.run(run())


def test_s3_stores_objects_and_honours_presigned_requests(stack: EmbeddedStack) -> None:
    env = stack.env
    s3 = s3_client(env)
    bucket = env["TRIBE_S3_BUCKET"]
    s3.put_object(Bucket=bucket, Key="media/a.txt", Body=b"alpha", ContentType="text/plain")
    assert s3.get_object(Bucket=bucket, Key="media/a.txt")["Body"].read() == b"alpha"

    post = s3.generate_presigned_post(
        bucket, "media/upload.bin", Conditions=[["content-length-range", 1, 16]], ExpiresIn=60
    )
    ok = httpx.post(post["url"], data=post["fields"], files={"file": ("upload.bin", b"small enough")})
    assert ok.status_code in (200, 204), ok.text
    assert s3.get_object(Bucket=bucket, Key="media/upload.bin")["Body"].read() == b"small enough"
    too_big = httpx.post(post["url"], data=post["fields"], files={"file": ("upload.bin", b"x" * 17)})
    assert too_big.status_code == 400

    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "media/b.txt"}, ExpiresIn=60)
    assert httpx.put(put_url, content=b"bravo").status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "media/b.txt"}, ExpiresIn=60)
    assert httpx.get(get_url).content == b"bravo"

    wrong = s3_client({**env, "TRIBE_S3_SECRET_KEY": "not-the-secret"})
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        wrong.get_object(Bucket=bucket, Key="media/a.txt")


def test_stripe_creates_customers(stack: EmbeddedStack) -> None:
    base = stack.env["TRIBE_STRIPE_API_BASE"]
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    created = httpx.post(f"{base}/v1/customers", data={"email": "ada@example.com"}, headers=headers)
    assert created.status_code == 200, created.text
    customer = created.json()
    assert customer["id"].startswith("cus_")
    fetched = httpx.get(f"{base}/v1/customers/{customer['id']}", headers=headers)
    assert fetched.json()["email"] == "ada@example.com"


def test_push_sink_records_requests_and_answers_like_expo(stack: EmbeddedStack) -> None:
    url = stack.env["TRIBE_PUSH_URL"]
    before = set(stack.push_dir.glob("*.json"))
    messages = [
        {"to": "ExponentPushToken[good-one]", "title": "Hi", "body": "there"},
        {"to": "ExponentPushToken[invalid-gone]", "title": "Hi", "body": "there"},
    ]
    answer = httpx.post(url, json=messages)
    assert answer.status_code == 200
    ok, gone = answer.json()["data"]
    assert ok["status"] == "ok"
    assert ok["id"]
    assert gone["status"] == "error"
    assert gone["details"] == {"error": "DeviceNotRegistered"}
    [stored] = sorted(set(stack.push_dir.glob("*.json")) - before)
    assert json.loads(stored.read_text()) == messages
    assert stack.push_dir == stack.data_dir / "push"


def test_smtp_sink_stores_each_mail_as_eml(stack: EmbeddedStack) -> None:
    port = int(stack.env["TRIBE_SMTP_URL"].rsplit(":", 1)[1])
    message = EmailMessage()
    message["From"] = "Tribe <no-reply@tribe.local>"
    message["To"] = "ada@example.com"
    message["Subject"] = "Welcome to Tribe ✓"
    message.set_content("Hello Ada")
    before = set(stack.mail_dir.glob("*.eml"))
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(message, to_addrs=["ada@example.com", "hidden@example.com"])
    new = sorted(set(stack.mail_dir.glob("*.eml")) - before)
    assert len(new) == 1
    parsed = BytesParser(policy=default_policy).parsebytes(new[0].read_bytes())
    assert parsed["Subject"] == "Welcome to Tribe ✓"
    assert parsed["X-Envelope-To"] == "ada@example.com, hidden@example.com"
    body = parsed.get_body()
    assert body is not None
    assert body.get_content().strip() == "Hello Ada"
    assert stack.mail_dir == stack.data_dir / "mail"


def test_restart_stops_everything_and_keeps_data_and_ports(stack: EmbeddedStack, stack_dir: Path) -> None:
    env, ports = stack.env, stack.ports
    pg(env, "CREATE TABLE IF NOT EXISTS kept (v text)", "INSERT INTO kept VALUES ('before restart')")
    client = redis.Redis.from_url(env["TRIBE_REDIS_URL"])
    client.set("tribe:kept", "yes")
    client.close()

    async def add_stream() -> None:
        nc = await nats.connect(env["TRIBE_NATS_URL"])
        js = nc.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept.>"])
        await js.publish("kept.one", b"1")
        await nc.close()

    asyncio.run(add_stream())
    s3_client(env).put_object(Bucket=env["TRIBE_S3_BUCKET"], Key="kept.txt", Body=b"kept")
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    customer = httpx.post(f"{env['TRIBE_STRIPE_API_BASE']}/v1/customers", data={"name": "Kept"}, headers=headers)
    customer_id = customer.json()["id"]

    pids = recorded_pids(stack_dir)
    assert sorted(set(pids.values())) == ["nats", "postgres", "push", "redis", "s3", "smtp", "stripe"]
    began = time.monotonic()
    stack.stop()
    stop_seconds = time.monotonic() - began
    print(f"\nstack stopped in {stop_seconds:.1f} s")
    assert stop_seconds < 10
    assert processes_in_groups(set(pids)) == []  # Postgres' workers included
    assert processes_mentioning(str(stack_dir)) == []  # the reaper included
    assert not (stack_dir / "pids.json").exists()
    assert all(port_is_free(p) for p in ports.values())
    last_run = (stack.logs_dir / "postgres.log").read_text().rsplit("\n=====", 1)[-1]
    assert "received fast shutdown request" in last_run
    assert "database system is shut down" in last_run

    again = EmbeddedStack(stack_dir, external={})
    began = time.monotonic()
    env2 = again.start()
    print(f"stack restarted in {time.monotonic() - began:.1f} s")
    try:
        assert env2 == env  # same ports, same S3 credentials
        assert pg(env2, "SELECT v FROM kept") == [[("before restart",)]]
        client = redis.Redis.from_url(env2["TRIBE_REDIS_URL"])
        assert client.get("tribe:kept") == b"yes"
        client.close()

        async def stream_messages() -> int:
            nc = await nats.connect(env2["TRIBE_NATS_URL"])
            info = await nc.jetstream().stream_info("KEPT")
            await nc.close()
            return int(info.state.messages)

        assert asyncio.run(stream_messages()) == 1
        assert s3_client(env2).get_object(Bucket=env2["TRIBE_S3_BUCKET"], Key="kept.txt")["Body"].read() == b"kept"
        fetched = httpx.get(f"{env2['TRIBE_STRIPE_API_BASE']}/v1/customers/{customer_id}", headers=headers)
        assert fetched.json()["name"] == "Kept"
    finally:
        again.stop()


# --- external engines, failures, dead owners ---------------------------------------------------


def test_external_engines_are_passed_through_and_not_started(tmp_path: Path) -> None:
    external = {**external_except("TRIBE_SMTP_URL"), "TRIBE_JWT_SECRET": "x" * 40, "HOME": "/nowhere"}
    with EmbeddedStack(tmp_path, external=external) as running:
        env = running.env
        assert set(running.ports) == {"smtp"}
        assert set(recorded_pids(tmp_path).values()) == {"smtp"}
        assert env["TRIBE_SMTP_URL"] == f"smtp://127.0.0.1:{running.ports['smtp']}"
    assert {k: v for k, v in env.items() if k != "TRIBE_SMTP_URL"} == external_except("TRIBE_SMTP_URL")
    assert not (tmp_path / "postgres").exists()
    assert not (tmp_path / "s3").exists()


def test_all_external_starts_nothing(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path, external=FAKE_EXTERNAL) as running:
        assert running.env == FAKE_EXTERNAL
        assert running.ports == {}
        assert processes_mentioning(str(tmp_path)) == []


def test_a_second_stack_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    second = EmbeddedStack(tmp_path, external=external_except("TRIBE_SMTP_URL"))
    with (
        EmbeddedStack(tmp_path, external=external_except("TRIBE_SMTP_URL")),
        pytest.raises(EngineError, match="in use by another running stack"),
    ):
        second.start()


def test_a_busy_fixed_port_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = EmbeddedStack(tmp_path, external=external_except("TRIBE_SMTP_URL"), ports={"smtp": port})
        with pytest.raises(EngineError, match=f"smtp: port {port} \\(smtp\\) is already in use"):
            stack.start()


def test_a_port_taken_after_it_was_chosen_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import shared.dev.stack as stack_module

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # The remembered port looks free when chosen, and is taken by the time the sink binds it.
        (tmp_path / "ports.json").write_text(json.dumps({"smtp": taken}))
        monkeypatch.setattr(stack_module, "port_is_free", lambda port, host="127.0.0.1": True)
        statuses: list[str] = []
        external = external_except("TRIBE_SMTP_URL")
        with EmbeddedStack(tmp_path, external=external, on_status=statuses.append) as running:
            port = running.ports["smtp"]
            assert port != taken
            assert any("retrying on new ports" in s for s in statuses)
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                assert smtp.noop()[0] == 250
    assert json.loads((tmp_path / "ports.json").read_text()) == {"smtp": port}


def test_a_failing_engine_is_named_with_its_log(tmp_path: Path) -> None:
    # A cluster from an unknown Postgres version: the server refuses it and exits at once.
    (tmp_path / "postgres").mkdir(mode=0o700)
    (tmp_path / "postgres" / "PG_VERSION").write_text("9\n")
    stack = EmbeddedStack(tmp_path, external=external_except("TRIBE_DATABASE_URL", "TRIBE_SMTP_URL"))
    with pytest.raises(EngineError) as failure:
        stack.start()
    message = str(failure.value)
    assert message.startswith("postgres: exited with code")
    assert str(tmp_path / "logs" / "postgres.log") in message
    last_log_line = (tmp_path / "logs" / "postgres.log").read_text().strip().splitlines()[-1]
    assert last_log_line in message  # the log's own words are quoted
    assert processes_mentioning(str(tmp_path)) == []  # the SMTP sink that did start was stopped
    assert not (tmp_path / "pids.json").exists()


OWNER = """
import json, sys, time
from pathlib import Path
from shared.dev.stack import EmbeddedStack
stack = EmbeddedStack(Path(sys.argv[1]), external=json.loads(sys.argv[2]), startup_timeout=30)
print(json.dumps(stack.start()), flush=True)
if sys.argv[3] == "wait":
    time.sleep(600)
"""


def start_owner(
    data_dir: Path, external: Mapping[str, str], then: str = "wait"
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A separate process that starts a stack and then waits to be killed (or exits); return it and its env."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir), json.dumps(dict(external)), then],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, f"owner failed; see {data_dir / 'logs'}"
    return owner, json.loads(line)


def cleanup(owner: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Never leave a test's engines behind, whatever failed."""
    owner.kill()
    owner.wait()
    for pid in processes_mentioning(str(data_dir)):
        os.kill(pid, signal.SIGKILL)


def test_an_owner_that_exits_without_stop_stops_its_engines_at_exit(tmp_path: Path) -> None:
    owner, _ = start_owner(tmp_path, external_except("TRIBE_REDIS_URL", "TRIBE_SMTP_URL"), then="exit")
    try:
        pids = recorded_pids(tmp_path)
        assert owner.wait(timeout=15) == 0
        assert not any(alive(p) for p in pids)  # atexit ran stop() before the owner was gone
        assert not (tmp_path / "pids.json").exists()
    finally:
        cleanup(owner, tmp_path)


def test_engines_of_a_killed_owner_are_stopped_by_the_reaper(tmp_path: Path) -> None:
    owner, env = start_owner(tmp_path, external_except("TRIBE_REDIS_URL", "TRIBE_SMTP_URL"))
    try:
        pids = recorded_pids(tmp_path)
        assert sorted(pids.values()) == ["redis", "smtp"]
        owner.kill()  # no atexit, no stop(): only the reaper can clean up
        owner.wait()
        assert wait_for(lambda: not any(alive(p) for p in pids), timeout=15)
        assert wait_for(lambda: processes_mentioning(str(tmp_path)) == [], timeout=5)
        assert not (tmp_path / "pids.json").exists()
        client = redis.Redis.from_url(env["TRIBE_REDIS_URL"])
        with pytest.raises(redis.ConnectionError):
            client.ping()
    finally:
        cleanup(owner, tmp_path)


def test_a_postgres_left_running_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    external = external_except("TRIBE_DATABASE_URL")
    owner, env = start_owner(tmp_path, external)
    try:
        postmaster = int((tmp_path / "postgres" / "postmaster.pid").read_text().split()[0])
        for reaper in processes_mentioning(f"shared.dev.reaper {tmp_path}"):
            os.kill(reaper, signal.SIGKILL)
        owner.kill()
        owner.wait()
        (tmp_path / "pids.json").unlink()  # only postmaster.pid knows about the server now
        assert alive(postmaster)
        statuses: list[str] = []
        with EmbeddedStack(tmp_path, external=external, on_status=statuses.append) as again:
            assert not alive(postmaster)
            assert any("left running" in s for s in statuses)
            assert again.env["TRIBE_DATABASE_URL"] == env["TRIBE_DATABASE_URL"]
            assert pg(again.env, "SELECT 1") == [[(1,)]]
    finally:
        cleanup(owner, tmp_path)


def test_default_bucket_matches_the_settings_default() -> None:
    field = next(f for f in msgspec.structs.fields(Settings) if f.name == "s3_bucket")
    assert field.default == DEFAULT_BUCKET


def test_unknown_fixed_port_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown port name"):
        EmbeddedStack(tmp_path, ports={"postgress": 5432})

"""The arq codec: msgpack via msgspec round-trips job envelopes and never touches pickle."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from arq.jobs import DeserializationError, SerializationError, deserialize_job, serialize_job

from shared.bus import EmailRequested, UserRegistered
from workers.serialization import JobCodecError, job_deserializer, job_serializer


def test_job_envelope_round_trips_with_struct_payload() -> None:
    email = EmailRequested(to="a@example.com", subject="Hi", body="Body\n")
    data = serialize_job("send_email", (email,), {}, None, 1_700_000_000_000, serializer=job_serializer)

    job = deserialize_job(data, deserializer=job_deserializer)

    assert job.function == "send_email"
    assert job.enqueue_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert msgspec.convert(job.args[0], EmailRequested) == email


def test_uuid_and_datetime_values_survive() -> None:
    event = UserRegistered(user_id=uuid.uuid4())
    when = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

    decoded = job_deserializer(job_serializer({"a": [event], "k": {"at": when}}))

    assert msgspec.convert(decoded["a"][0], UserRegistered) == event
    assert decoded["k"]["at"] == when


def test_failed_job_exception_is_kept_as_name_and_message() -> None:
    decoded = job_deserializer(job_serializer({"r": ValueError("boom")}))

    assert decoded["r"] == {"error": "ValueError", "message": "boom"}


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_payloads_are_refused(protocol: int) -> None:
    data = pickle.dumps({"f": "send_email", "a": (), "k": {}, "t": 1, "et": 0}, protocol=protocol)

    with pytest.raises(JobCodecError):
        job_deserializer(data)
    # arq turns the refusal into a failed job rather than running anything.
    with pytest.raises(DeserializationError):
        deserialize_job(data, deserializer=job_deserializer)


def test_unknown_objects_are_not_pickled() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="msgspec-encodable"):
        job_serializer({"a": [Opaque()]})
    with pytest.raises(SerializationError):
        serialize_job("send_email", (Opaque(),), {}, None, 0, serializer=job_serializer)

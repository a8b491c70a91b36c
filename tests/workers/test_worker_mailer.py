"""The SMTP mailer against the session's sink, and its error mapping."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from shared.config import Settings
from shared.errors import InvalidInput, Unavailable
from shared.mail import Mailer


async def test_sends_plain_text_mail_to_the_sink(
    settings: Settings, find_mail: Callable[[str], list[EmailMessage]]
) -> None:
    subject = f"Mailer test {uuid.uuid4().hex}"
    mailer = Mailer.from_settings(settings)

    sent = await mailer.send_text("Bob <bob@example.com>", subject, "Hello Bob,\nsee you there.\n", message_id="t.1")

    [received] = find_mail(subject)
    assert received["From"] == settings.mail_from
    assert received["To"] == "Bob <bob@example.com>"
    assert received["Message-ID"] == sent["Message-ID"] == f"<t.1@{mailer.domain}>"
    body = received.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Hello Bob,\nsee you there.\n"


async def test_unreachable_relay_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        mailer = Mailer(f"smtp://127.0.0.1:{port}", "Tribe <no-reply@tribe.local>", timeout=2)

        with pytest.raises(Unavailable):
            await mailer.send_text("bob@example.com", "s", "b")


@pytest.mark.parametrize(
    ("to", "subject"),
    [("bob@example.com", "Hi\r\nBcc: eve@example.com"), ("bob@example.com\nBcc: eve@example.com", "Hi"), ("bob", "Hi")],
)
def test_header_injection_and_bad_addresses_are_invalid_input(to: str, subject: str) -> None:
    mailer = Mailer("smtp://127.0.0.1:25", "Tribe <no-reply@tribe.local>")

    with pytest.raises(InvalidInput):
        mailer.compose(to, subject, "body")


def test_smtp_url_parts() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Mailer("http://127.0.0.1:25", "a@b.c")
    mailer = Mailer("smtps://user%40x:p%3Ass@mail.example.com", "Tribe <no-reply@tribe.example>")
    assert mailer.domain == "tribe.example"

"""Plain-text or text + HTML email over SMTP (``smtp://``, ``smtp+starttls://`` or ``smtps://``), sent from a thread."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

from shared.clock import utcnow
from shared.config import Settings
from shared.errors import InvalidInput, Unavailable

_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class Mailer:
    """Sends one message per SMTP connection; vendor errors surface as ``DomainError``s."""

    def __init__(self, smtp_url: str, mail_from: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"unsupported SMTP URL scheme {parts.scheme!r} (use smtp, smtp+starttls or smtps)")
        if not parts.hostname:
            raise ValueError("the SMTP URL has no host")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else ""
        self._timeout = timeout
        self.mail_from = mail_from
        domain = parseaddr(mail_from)[1].rpartition("@")[2]
        self.domain = domain or "localhost"

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        """A mailer for ``settings.smtp_url`` sending as ``settings.mail_from``."""
        return cls(settings.smtp_url, settings.mail_from)

    def compose(
        self,
        to: str,
        subject: str,
        body: str,
        *,
        message_id: str | None = None,
        html: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> EmailMessage:
        """A message from the configured sender, text plus optional HTML; header injection is ``InvalidInput``."""
        message = EmailMessage()
        try:
            message["From"] = self.mail_from
            message["To"] = to
            message["Subject"] = subject
            message["Date"] = format_datetime(utcnow())
            # A caller-chosen Message-ID lets a retried send be recognised as the same mail downstream.
            message["Message-ID"] = f"<{message_id}@{self.domain}>" if message_id else make_msgid(domain=self.domain)
            for name, value in (headers or {}).items():
                message[name] = value
            message.set_content(body)
            if html is not None:
                message.add_alternative(html, subtype="html")
        except (ValueError, IndexError) as exc:
            # The email package raises these for CR/LF in headers and unparsable addresses.
            raise InvalidInput(f"cannot compose email: {exc}", code="email_invalid") from None
        recipients = message["To"].addresses
        if not recipients or not all(a.domain and a.username for a in recipients):
            raise InvalidInput("the recipient is not a deliverable address", code="email_invalid")
        return message

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message``; ``Unavailable`` when the relay is unreachable or refuses for now."""
        await asyncio.to_thread(self._send_blocking, message)

    async def send_text(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> EmailMessage:
        """Compose and deliver one plain-text email; returns what was sent."""
        message = self.compose(to, subject, body, message_id=message_id)
        await self.send(message)
        return message

    async def send_multipart(
        self,
        to: str,
        subject: str,
        text: str,
        html: str,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> EmailMessage:
        """Compose and deliver one text + HTML email; returns what was sent."""
        message = self.compose(to, subject, text, message_id=message_id, html=html, headers=headers)
        await self.send(message)
        return message

    def _send_blocking(self, message: EmailMessage) -> None:
        # gethostname() instead of smtplib's getfqdn() default, which can stall on a DNS lookup.
        local_hostname = socket.gethostname()
        try:
            client: smtplib.SMTP
            if self._scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    local_hostname=local_hostname,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                client = smtplib.SMTP(self._host, self._port, local_hostname=local_hostname, timeout=self._timeout)
            with client:
                if self._scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    client.login(self._username, self._password)
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                # 5xx is final: retrying the same recipient will not help.
                raise InvalidInput("the mail relay rejected the recipient", code="email_rejected") from None
            raise Unavailable(f"mail relay deferred the recipient: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError):
                raise InvalidInput(
                    f"the mail relay rejected the message ({exc.smtp_code})", code="email_rejected"
                ) from None
            raise Unavailable(f"mail relay answered {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise Unavailable(f"mail relay unreachable: {exc}") from exc

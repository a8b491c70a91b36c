"""Email jobs."""

from __future__ import annotations

import structlog

from shared.bus import EmailRequested
from workers.context import JobContext
from workers.jobs.base import JobSpec

log = structlog.stdlib.get_logger(__name__)

# Long enough to outlive every arq retry of the same job.
SENT_MARKER_TTL_S = 7 * 24 * 3600


def sent_marker_key(job_id: str) -> str:
    """The Redis key that records that job ``job_id`` already handed its mail to the relay."""
    return f"tribe:mail:sent:{job_id}"


async def send_email(ctx: JobContext, email: EmailRequested) -> None:
    """Send ``email`` once per job id, even when arq runs the job again."""
    res = ctx.resources
    marker = sent_marker_key(ctx.job_id)
    if await res.redis.exists(marker):
        log.info("mail.already_sent", job_id=ctx.job_id)
        return
    # The Message-ID follows the job id, so a resend after a crash is the same message to the recipient's server.
    message = await res.mailer.send_text(email.to, email.subject, email.body, message_id=ctx.job_id.replace(":", "."))
    await res.redis.set(marker, str(message["Message-ID"]), ex=SENT_MARKER_TTL_S)
    log.info("mail.sent", job_id=ctx.job_id, message_id=str(message["Message-ID"]))


SEND_EMAIL = JobSpec(name="send_email", payload_type=EmailRequested, run=send_email)

"""The typed job contract: one Struct in, a deterministic job id per cause, errors mapped to retry or a log line."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from arq.connections import ArqRedis
from arq.worker import Function, Retry, func

from shared.errors import DomainError, Unavailable
from workers.context import JobContext

P = TypeVar("P", bound=msgspec.Struct)

log = structlog.stdlib.get_logger(__name__)

_MAX_RETRY_DELAY_S = 300.0


def retry_delay(job_try: int) -> float:
    """Seconds before attempt ``job_try + 1``: 5, 10, 20 ... capped at five minutes."""
    return min(5.0 * 2.0 ** max(job_try - 1, 0), _MAX_RETRY_DELAY_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec(Generic[P]):
    """One arq job: its name, the Struct it takes, and the coroutine that runs it."""

    name: str
    payload_type: type[P]
    run: Callable[[JobContext, P], Awaitable[None]]
    max_tries: int = 8
    timeout_s: float = 60.0

    def job_id(self, cause: str | uuid.UUID) -> str:
        """The arq job id for ``cause``; the same cause never queues this job twice."""
        return f"{self.name}:{cause}"

    async def enqueue(
        self,
        redis: ArqRedis,
        payload: P,
        *,
        cause: str | uuid.UUID,
        defer_by: float | None = None,
        defer_until: datetime | None = None,
    ) -> bool:
        """Queue ``payload``; ``False`` when a job for ``cause`` is queued, running or finished within the last hour."""
        if not isinstance(payload, self.payload_type):
            raise TypeError(f"{self.name} takes {self.payload_type.__name__}, got {type(payload).__name__}")
        job = await redis.enqueue_job(
            self.name, payload, _job_id=self.job_id(cause), _defer_by=defer_by, _defer_until=defer_until
        )
        return job is not None

    def arq_function(self) -> Function:
        """The arq registration of this job (name, timeout, tries)."""

        async def coroutine(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
            await self.execute(ctx, *args, **kwargs)

        coroutine.__qualname__ = self.name
        return func(coroutine, name=self.name, timeout=self.timeout_s, max_tries=self.max_tries)

    async def execute(self, ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
        """Decode the payload arq hands over and run the job, mapping ``DomainError``s once."""
        if len(args) != 1 or kwargs:
            raise TypeError(f"{self.name} takes exactly one {self.payload_type.__name__} argument")
        # The codec hands back builtins; convert() restores the Struct and validates it.
        payload = msgspec.convert(args[0], self.payload_type)
        job = JobContext.from_arq(ctx)
        try:
            await self.run(job, payload)
        except Unavailable as exc:
            delay = retry_delay(job.job_try)
            log.warning(
                "job.retry", job=self.name, job_id=job.job_id, job_try=job.job_try, delay_s=delay, error=str(exc)
            )
            raise Retry(defer=delay) from exc
        except DomainError as exc:
            # Anything else the domain refuses will be refused again: log it, do not retry.
            log.warning("job.rejected", job=self.name, job_id=job.job_id, code=exc.code, error=exc.detail)

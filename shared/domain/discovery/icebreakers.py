"""The icebreaker catalog: existence checks for pins, the deterministic prompt of the day, prompts per topic."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.discovery.models import IcebreakerPrompt

FALLBACK_PROMPT = "What's something you're looking forward to this week?"


async def prompt_exists(session: AsyncSession, prompt_id: str) -> bool:
    """Whether ``prompt_id`` is in the catalog (pinned prompts must be)."""
    return await session.scalar(select(IcebreakerPrompt.id).where(IcebreakerPrompt.id == prompt_id)) is not None


async def active_prompts(session: AsyncSession) -> list[IcebreakerPrompt]:
    """Active prompts in rotation order."""
    rows = await session.scalars(
        select(IcebreakerPrompt).where(IcebreakerPrompt.active.is_(True)).order_by(IcebreakerPrompt.position)
    )
    return list(rows)


def prompt_of_day(prompts: list[IcebreakerPrompt], day: date) -> IcebreakerPrompt | None:
    """The prompt for ``day``: the catalog walked in order, one a day, the same for everyone on that date."""
    if not prompts:
        return None
    return prompts[day.toordinal() % len(prompts)]


def topic_prompts(prompts: list[IcebreakerPrompt]) -> dict[str, str]:
    """Prompt text by the interest it is about (the first prompt of a topic wins)."""
    out: dict[str, str] = {}
    for prompt in prompts:
        if prompt.topic is not None:
            out.setdefault(prompt.topic, prompt.text)
    return out

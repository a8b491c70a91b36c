"""``/v1/streaks``, ``/v1/badges`` and ``/v1/leaderboards``."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.status_codes import HTTP_200_OK

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.gamification.schemas import (
    BadgeCatalog,
    LeaderboardEntry,
    MyRank,
    StreakActivity,
    StreakCounts,
    StreakList,
    UserBadges,
)
from shared.domain.gamification.services import BadgeService, LeaderboardService, StreakService, parse_period
from shared.pagination import Page


class StreakController(Controller):
    """Daily streaks."""

    path = "/v1/streaks"
    tags = ["gamification"]

    @post("/{user_id:str}", status_code=HTTP_200_OK)
    async def record(
        self, user_id: str, data: StreakActivity, streak_service: StreakService, caller: AccessClaims
    ) -> StreakCounts:
        """Count an activity toward the caller's streak."""
        return await streak_service.record(caller.user_id, parse_id(ids.Prefix.USER, user_id), data)

    @get("/{user_id:str}")
    async def show(self, user_id: str, streak_service: StreakService, caller: AccessClaims) -> StreakList:
        """Every kind of streak of a user."""
        return await streak_service.list(parse_id(ids.Prefix.USER, user_id))


class BadgeController(Controller):
    """The badge catalog and users' badges."""

    path = "/v1/badges"
    tags = ["gamification"]

    @get("/")
    async def catalog(self, badge_service: BadgeService, caller: AccessClaims) -> BadgeCatalog:
        """Every badge there is."""
        return await badge_service.catalog()

    @get("/{user_id:str}")
    async def of_user(self, user_id: str, badge_service: BadgeService, caller: AccessClaims) -> UserBadges:
        """The badges a user earned."""
        return await badge_service.of_user(parse_id(ids.Prefix.USER, user_id))


class LeaderboardController(Controller):
    """Points leaderboards per city, category and period."""

    path = "/v1/leaderboards"
    tags = ["gamification"]

    @get("/")
    async def board(
        self,
        leaderboard_service: LeaderboardService,
        caller: AccessClaims,
        city: str | None = None,
        category: str | None = None,
        period: str = "week",
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[LeaderboardEntry]:
        """A leaderboard, best first; equal scores share a rank."""
        return await leaderboard_service.page(
            city=city, category=category, period=parse_period(period), cursor=cursor, limit=limit
        )

    @get("/me")
    async def mine(
        self,
        leaderboard_service: LeaderboardService,
        caller: AccessClaims,
        city: str | None = None,
        category: str | None = None,
        period: str = "week",
    ) -> MyRank:
        """The caller's rank and score."""
        return await leaderboard_service.mine(caller.user_id, city=city, category=category, period=parse_period(period))

"""Dependency providers: the runtime's services, the caller, rate limits, path ids."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response
from litestar.datastructures import State

from api.runtime import Runtime
from shared import ids
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessClaims
from shared.domain.chat.services import ChatService
from shared.domain.clubs.services import ClubService
from shared.domain.discovery.services import DiscoveryService
from shared.domain.events.services import EventService
from shared.domain.gamification.services import BadgeService, LeaderboardService, StreakService
from shared.domain.media.services import MediaService
from shared.domain.notifications.services import NotificationService
from shared.domain.payments.boosts import BoostService
from shared.domain.payments.idempotency import IdempotencyGuard, StoredResponse
from shared.domain.payments.member_tiers import MemberTierService
from shared.domain.payments.promos import PromoService
from shared.domain.payments.services import PaymentService
from shared.domain.posts.services import PostService
from shared.domain.search.services import SearchService
from shared.domain.social.services import InviteService, SocialService, VouchService
from shared.domain.users.deletion import AccountDeletionService
from shared.domain.users.services import UserService
from shared.errors import NotFound


def provide_runtime(state: State) -> Runtime:
    """The process runtime."""
    runtime: Runtime = state.runtime
    return runtime


def provide_auth_service(state: State) -> AuthService:
    """The account and token service."""
    return provide_runtime(state).auth


def provide_user_service(state: State) -> UserService:
    """The profile service."""
    return provide_runtime(state).users


def provide_notification_service(state: State) -> NotificationService:
    """The notification service."""
    return provide_runtime(state).notifications


def provide_streak_service(state: State) -> StreakService:
    """The streak service."""
    return provide_runtime(state).streaks


def provide_badge_service(state: State) -> BadgeService:
    """The badge service."""
    return provide_runtime(state).badges


def provide_leaderboard_service(state: State) -> LeaderboardService:
    """The leaderboard service."""
    return provide_runtime(state).leaderboards


def provide_club_service(state: State) -> ClubService:
    """The clubs, memberships and spaces service."""
    return provide_runtime(state).clubs


def provide_event_service(state: State) -> EventService:
    """The events, RSVPs and calendars service."""
    return provide_runtime(state).events


def provide_social_service(state: State) -> SocialService:
    """The friends, follows and blocks service."""
    return provide_runtime(state).social


def provide_vouch_service(state: State) -> VouchService:
    """The vouches service."""
    return provide_runtime(state).vouches


def provide_invite_service(state: State) -> InviteService:
    """The invite codes service."""
    return provide_runtime(state).invites


def provide_media_service(state: State) -> MediaService:
    """The media service."""
    return provide_runtime(state).media


def provide_post_service(state: State) -> PostService:
    """The posts, comments, reactions and feeds service."""
    return provide_runtime(state).posts


def provide_search_service(state: State) -> SearchService:
    """The search service."""
    return provide_runtime(state).search


def provide_chat_service(state: State) -> ChatService:
    """The chat service (shared with the realtime gateway's code path)."""
    return provide_runtime(state).chat


def provide_payment_service(state: State) -> PaymentService:
    """The plans, subscriptions and webhooks service."""
    return provide_runtime(state).payments


def provide_idempotency_guard(state: State) -> IdempotencyGuard:
    """The Idempotency-Key store for money-moving requests."""
    return provide_runtime(state).idempotency


def provide_boost_service(state: State) -> BoostService:
    """The boosts service."""
    return provide_runtime(state).boosts


def provide_promo_service(state: State) -> PromoService:
    """The promo code service (and the plan subscription that redeems codes)."""
    return provide_runtime(state).promos


def provide_member_tier_service(state: State) -> MemberTierService:
    """The creator and club tier service."""
    return provide_runtime(state).member_tiers


def provide_caller(request: Request[AccessClaims, Any, Any]) -> AccessClaims:
    """The authenticated caller (the auth middleware has verified it)."""
    return request.user


def rate_limited(bucket: str) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A dependency counting one hit per client address in ``bucket``."""

    async def hit(request: Request[Any, Any, Any]) -> None:
        client = request.client.host if request.client else "unknown"
        await provide_runtime(request.app.state).auth_limiter.hit(bucket, client)

    return hit


def idempotent_response(stored: StoredResponse) -> Response[bytes]:
    """The stored JSON answer of an idempotent write, marked ``Idempotent-Replayed`` when it is a repeat."""
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return Response(stored.body, status_code=stored.status_code, media_type="application/json", headers=headers)


def parse_id(prefix: ids.Prefix, value: str) -> uuid.UUID:
    """The UUID behind a public id in a path; malformed or foreign ids are simply not found."""
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise NotFound(f"no such {prefix.value}", code="not_found") from None


def provide_account_deletion(state: State) -> AccountDeletionService:
    """Account deletion, over the runtime's events, media and payments services."""
    runtime = provide_runtime(state)
    return AccountDeletionService(
        runtime.sessions,
        events=runtime.events,
        media=runtime.media,
        payments=runtime.payments,
        member_tiers=runtime.member_tiers,
    )


def provide_discovery_service(state: State) -> DiscoveryService:
    """The recommendations, icebreakers, places and map service (built once per process, on first use)."""
    service = state.get("discovery_service")
    if not isinstance(service, DiscoveryService):
        runtime = provide_runtime(state)
        service = DiscoveryService(runtime.sessions, media=runtime.media)
        state["discovery_service"] = service
    return service

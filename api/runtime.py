"""What the API process builds once at start-up and closes at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import nats
from litestar import Litestar
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import Settings
from shared.db.fastread import FastReads, asyncpg_dsn
from shared.db.listen import NotifiedCache, NotifyListener
from shared.db.session import create_engine, create_read_session_factory, create_session_factory
from shared.domain.auth.access import ACCESS_CHANNEL, AccessCache, AccessChecker
from shared.domain.auth.services import AuthService
from shared.domain.auth.tokens import AccessTokens
from shared.domain.chat.services import ChatLimits, ChatService
from shared.domain.clubs.services import ClubService
from shared.domain.events.services import EventService
from shared.domain.gamification.services import BadgeService, LeaderboardService, StreakService
from shared.domain.media.services import MediaService
from shared.domain.moderation.blocklist import BLOCKLIST_CHANNEL, BlocklistCache
from shared.domain.notifications.services import NotificationService, UnsubscribeTokens
from shared.domain.payments.boosts import BoostService
from shared.domain.payments.idempotency import IdempotencyGuard
from shared.domain.payments.member_tiers import MemberTierService
from shared.domain.payments.promos import PromoService
from shared.domain.payments.services import PaymentService
from shared.domain.payments.stripe_client import StripeGateway
from shared.domain.posts.services import PostService
from shared.domain.search.services import SearchService
from shared.domain.social.services import InviteService, SocialService, VouchService
from shared.domain.users.services import UserService
from shared.ratelimit import RateLimiter
from shared.storage import Storage


@dataclass
class Runtime:
    """Connections and services shared by every request of this process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    nats: NatsClient
    access: AccessChecker
    auth: AuthService
    users: UserService
    notifications: NotificationService
    streaks: StreakService
    badges: BadgeService
    leaderboards: LeaderboardService
    clubs: ClubService
    social: SocialService
    vouches: VouchService
    invites: InviteService
    media: MediaService
    posts: PostService
    search: SearchService
    chat: ChatService
    events: EventService
    payments: PaymentService
    idempotency: IdempotencyGuard
    auth_limiter: RateLimiter
    boosts: BoostService
    promos: PromoService
    member_tiers: MemberTierService
    draining: bool = field(default=False)
    # Perf: the raw asyncpg pool of hot statements and the LISTEN connection that keeps the access
    # and blocklist caches honest.
    fastreads: FastReads | None = None
    listener: NotifyListener | None = None


def _notified_caches(settings: Settings, access: AccessCache, blocklist: BlocklistCache) -> dict[str, NotifiedCache]:
    """The caches the NOTIFY listener keeps honest, by channel (a cache set to 0 seconds stays off)."""
    caches: dict[str, NotifiedCache] = {}
    if settings.access_cache_seconds > 0:
        caches[ACCESS_CHANNEL] = access
    if settings.blocklist_cache_seconds > 0:
        caches[BLOCKLIST_CHANNEL] = blocklist
    return caches


async def open_runtime(settings: Settings) -> Runtime:
    """Connect to the engines and build the services."""
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    reads = create_read_session_factory(engine)
    redis = Redis.from_url(settings.redis_url)
    nc = await nats.connect(settings.nats_url, name="tribe-api", max_reconnect_attempts=-1)
    tokens = AccessTokens(settings)
    media = MediaService(settings, sessions, reads, Storage(settings))
    posts = PostService(sessions, reads, media=media)
    payments = PaymentService(sessions, StripeGateway(settings))
    promos = PromoService(sessions, StripeGateway(settings), payments)
    fastreads = await FastReads.open(settings)
    access_cache = AccessCache(settings.access_cache_seconds)
    blocklist_cache = BlocklistCache(settings.blocklist_cache_seconds)
    listener = NotifyListener(
        asyncpg_dsn(settings.database_url), _notified_caches(settings, access_cache, blocklist_cache)
    )
    await listener.start()
    access = AccessChecker(tokens, reads, access_cache)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        nats=nc,
        access=access,
        auth=AuthService(settings, sessions, tokens, on_revoke=access.forget_user),
        notifications=NotificationService(sessions, reads, UnsubscribeTokens(settings.jwt_secret)),
        streaks=StreakService(sessions, reads),
        badges=BadgeService(reads),
        leaderboards=LeaderboardService(reads, redis),
        users=UserService(sessions, reads, media, fast=fastreads),
        clubs=ClubService(settings, sessions, media=media),
        social=SocialService(sessions),
        vouches=VouchService(sessions),
        invites=InviteService(sessions),
        media=media,
        posts=posts,
        search=SearchService(reads, posts),
        chat=ChatService(
            sessions,
            redis,
            nc,
            ChatLimits.from_settings(settings),
            statements=fastreads,
            blocklist_cache=blocklist_cache,
        ),
        events=EventService(settings, sessions, media=media),
        payments=payments,
        idempotency=IdempotencyGuard(sessions),
        auth_limiter=RateLimiter(redis, settings.auth_rate_limit_per_minute),
        boosts=BoostService(settings, sessions, StripeGateway(settings), payments),
        promos=promos,
        member_tiers=MemberTierService(settings, sessions, StripeGateway(settings), payments, promos),
        fastreads=fastreads,
        listener=listener,
    )


async def close_runtime(runtime: Runtime) -> None:
    """Drain NATS and close the pools."""
    runtime.draining = True
    await runtime.chat.close()
    if runtime.nats.is_connected:
        await runtime.nats.drain()
    await runtime.redis.aclose()
    if runtime.listener is not None:
        await runtime.listener.stop()
    if runtime.fastreads is not None:
        await runtime.fastreads.close()
    await runtime.engine.dispose()


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that keeps the runtime on ``app.state.runtime``."""

    @asynccontextmanager
    async def manage(app: Litestar) -> AsyncIterator[None]:
        runtime = await open_runtime(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await close_runtime(runtime)

    return manage

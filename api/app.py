"""The Litestar application factory (granian calls ``create_app``)."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusController
from litestar.response import Redirect

from api import errors
from api.controllers.auth import AuthController
from api.controllers.boosts import BoostController
from api.controllers.chat import ChatController
from api.controllers.clubs import ClubController
from api.controllers.discovery import (
    ContentModerationController,
    CuratedListController,
    PlaceController,
    RecommendationController,
)
from api.controllers.events import CalendarController, EventController, PublicEventController
from api.controllers.gamification import BadgeController, LeaderboardController, StreakController
from api.controllers.health import HealthController
from api.controllers.media import MediaController, ModerationController
from api.controllers.member_tiers import MemberTierController
from api.controllers.moderation import ChatModerationController, ClubBlocklistController, MessageReportController
from api.controllers.notifications import DeviceController, NotificationController
from api.controllers.payments import PaymentController, PlanController, UserSubscriptionController
from api.controllers.posts import PostController
from api.controllers.promos import PromoCodeController, TierPromoCodeController
from api.controllers.search import SearchController
from api.controllers.social import FriendController, InviteController, UserGraphController, VouchController
from api.controllers.tickets import (
    EarningsController,
    PayoutController,
    TicketRefundController,
    VenuePaymentController,
    provide_ticket_service,
)
from api.controllers.users import UserController
from api.deps import (
    provide_auth_service,
    provide_badge_service,
    provide_boost_service,
    provide_caller,
    provide_chat_service,
    provide_club_service,
    provide_discovery_service,
    provide_event_service,
    provide_idempotency_guard,
    provide_invite_service,
    provide_leaderboard_service,
    provide_media_service,
    provide_member_tier_service,
    provide_notification_service,
    provide_payment_service,
    provide_post_service,
    provide_promo_service,
    provide_search_service,
    provide_social_service,
    provide_streak_service,
    provide_user_service,
    provide_vouch_service,
)
from api.middleware import request_middleware, stamp_response
from api.runtime import lifespan
from api.security import PUBLIC_PATHS, BearerAuthentication
from shared.config import Settings, get_settings
from shared.errors import DomainError
from shared.logging import configure_logging


@get("/docs", exclude_from_auth=True, include_in_schema=False)
async def docs() -> Redirect:
    """The interactive API reference."""
    return Redirect("/schema/scalar")


class MetricsController(PrometheusController):
    """Prometheus metrics of this process."""

    path = "/metrics"


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the API; settings are read here, never at import."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json, process="api")
    return Litestar(
        route_handlers=[
            AuthController,
            UserController,
            NotificationController,
            DeviceController,
            StreakController,
            BadgeController,
            LeaderboardController,
            ClubController,
            ChatController,
            UserGraphController,
            FriendController,
            VouchController,
            InviteController,
            MediaController,
            ModerationController,
            PostController,
            PlanController,
            PaymentController,
            UserSubscriptionController,
            SearchController,
            EventController,
            CalendarController,
            PublicEventController,
            HealthController,
            MetricsController,
            docs,
            MessageReportController,
            ChatModerationController,
            ClubBlocklistController,
            BoostController,
            PromoCodeController,
            TierPromoCodeController,
            MemberTierController,
            RecommendationController,
            PlaceController,
            CuratedListController,
            ContentModerationController,
            TicketRefundController,
            EarningsController,
            PayoutController,
            VenuePaymentController,
        ],
        lifespan=[lifespan(settings)],
        dependencies={
            "auth_service": Provide(provide_auth_service, sync_to_thread=False),
            "user_service": Provide(provide_user_service, sync_to_thread=False),
            "notification_service": Provide(provide_notification_service, sync_to_thread=False),
            "streak_service": Provide(provide_streak_service, sync_to_thread=False),
            "badge_service": Provide(provide_badge_service, sync_to_thread=False),
            "leaderboard_service": Provide(provide_leaderboard_service, sync_to_thread=False),
            "club_service": Provide(provide_club_service, sync_to_thread=False),
            "social_service": Provide(provide_social_service, sync_to_thread=False),
            "vouch_service": Provide(provide_vouch_service, sync_to_thread=False),
            "invite_service": Provide(provide_invite_service, sync_to_thread=False),
            "media_service": Provide(provide_media_service, sync_to_thread=False),
            "post_service": Provide(provide_post_service, sync_to_thread=False),
            "search_service": Provide(provide_search_service, sync_to_thread=False),
            "chat_service": Provide(provide_chat_service, sync_to_thread=False),
            "event_service": Provide(provide_event_service, sync_to_thread=False),
            "payment_service": Provide(provide_payment_service, sync_to_thread=False),
            "idempotency": Provide(provide_idempotency_guard, sync_to_thread=False),
            "caller": Provide(provide_caller, sync_to_thread=False),
            "boost_service": Provide(provide_boost_service, sync_to_thread=False),
            "promo_service": Provide(provide_promo_service, sync_to_thread=False),
            "member_tier_service": Provide(provide_member_tier_service, sync_to_thread=False),
            "discovery_service": Provide(provide_discovery_service, sync_to_thread=False),
            "ticket_service": Provide(provide_ticket_service, sync_to_thread=False),
        },
        middleware=[
            request_middleware,
            DefineMiddleware(BearerAuthentication, exclude=PUBLIC_PATHS, exclude_from_auth_key="exclude_from_auth"),
        ],
        exception_handlers={
            DomainError: errors.domain_error_handler,
            HTTPException: errors.http_error_handler,
            Exception: errors.internal_error_handler,
        },
        before_send=[stamp_response],
        after_exception=[errors.offer_premium_after_exception],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Tribe API",
            version="1.0.0",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"bearer": []}],
        ),
        logging_config=None,
        debug=False,
    )

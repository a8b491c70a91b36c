"""Search over users, clubs and posts: full text (``simple`` config) plus trigram word similarity on names.

Results are ranked, so the list is limit-only (``next_cursor`` is always null): a keyset on a
relevance score is not stable, and people refine the query rather than page deep into results.
Visibility is the same as everywhere else: no secret clubs for non-members, no posts the
caller could not open, nobody the caller blocks or is blocked by, no suspended accounts.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, exists, func, literal, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership, MembershipStatus, Privacy
from shared.domain.payments.boosts import boost_rank, boosted_user_filter
from shared.domain.posts.models import POST_DOCUMENT, Post
from shared.domain.posts.services import PostService, readable_posts
from shared.domain.search.models import CLUB_DOCUMENT, USER_DOCUMENT
from shared.domain.search.schemas import ClubHit, SearchHit, UserHit
from shared.domain.social.services import not_blocked_with
from shared.domain.users.models import AccountStatus, User
from shared.errors import FieldError, InvalidInput
from shared.pagination import Page, clamp_limit

SEARCH_TYPES = ("users", "clubs", "posts")
MAX_QUERY_LENGTH = 100


class SearchService:
    """``GET /v1/search``; one read per call."""

    def __init__(self, reads: async_sessionmaker[AsyncSession], posts: PostService) -> None:
        self._reads = reads
        self._posts = posts

    async def search(self, actor: AccessClaims, q: str | None, type_: str | None, limit: int | None) -> Page[SearchHit]:
        """The best matches of one type, most relevant first."""
        size = clamp_limit(limit)
        query = (q or "").strip()
        errors = []
        if not query or len(query) > MAX_QUERY_LENGTH:
            errors.append(FieldError("q", f"must be 1 to {MAX_QUERY_LENGTH} characters"))
        if type_ not in SEARCH_TYPES:
            errors.append(FieldError("type", f"must be one of {', '.join(SEARCH_TYPES)}"))
        if errors:
            raise InvalidInput(errors=errors)
        tsquery = func.websearch_to_tsquery(literal_column("'simple'::regconfig"), query)
        async with self._reads() as session:
            if type_ == "users":
                return Page(items=await self._users(session, actor.user_id, query, tsquery, size), next_cursor=None)
            if type_ == "clubs":
                return Page(items=await self._clubs(session, actor.user_id, query, tsquery, size), next_cursor=None)
            return Page(items=await self._posts_hits(session, actor.user_id, tsquery, size), next_cursor=None)

    async def _users(
        self, session: AsyncSession, viewer: uuid.UUID, q: str, tsquery: ColumnElement[object], size: int
    ) -> list[SearchHit]:
        document: ColumnElement[object] = literal_column(USER_DOCUMENT)
        similar = literal(q).op("<%")(User.display_name)
        score = func.greatest(func.word_similarity(q, User.display_name), func.ts_rank(document, tsquery))
        rows = await session.scalars(
            select(User)
            .where(
                or_(similar, document.op("@@")(tsquery)),
                User.status != AccountStatus.SUSPENDED.value,
                not_blocked_with(viewer, User.id),
            )
            # Profiles with a live ``search`` boost lead the results.
            .order_by(boost_rank(boosted_user_filter(utcnow(), "search")), score.desc(), User.id)
            .limit(size)
        )
        return [
            UserHit(
                id=ids.encode(ids.Prefix.USER, u.id), display_name=u.display_name, avatar_url=u.avatar_url, city=u.city
            )
            for u in rows
        ]

    async def _clubs(
        self, session: AsyncSession, viewer: uuid.UUID, q: str, tsquery: ColumnElement[object], size: int
    ) -> list[SearchHit]:
        document: ColumnElement[object] = literal_column(CLUB_DOCUMENT)
        member = exists().where(
            ClubMembership.club_id == Club.id,
            ClubMembership.user_id == viewer,
            ClubMembership.status == MembershipStatus.ACTIVE.value,
        )
        score = func.greatest(func.word_similarity(q, Club.name), func.ts_rank(document, tsquery))
        rows = await session.scalars(
            select(Club)
            .where(
                or_(literal(q).op("<%")(Club.name), document.op("@@")(tsquery)),
                Club.deleted_at.is_(None),
                or_(Club.privacy_level != Privacy.SECRET.value, member),
            )
            .order_by(score.desc(), Club.id)
            .limit(size)
        )
        return [
            ClubHit(
                id=ids.encode(ids.Prefix.CLUB, c.id),
                name=c.name,
                slug=c.slug,
                privacy_level=c.privacy_level,
                city=c.city,
                member_count=c.member_count,
            )
            for c in rows
        ]

    async def _posts_hits(
        self, session: AsyncSession, viewer: uuid.UUID, tsquery: ColumnElement[object], size: int
    ) -> list[SearchHit]:
        document: ColumnElement[object] = literal_column(POST_DOCUMENT)
        posts = list(
            await session.scalars(
                select(Post)
                .where(document.op("@@")(tsquery), readable_posts(viewer))
                .order_by(func.ts_rank(document, tsquery).desc(), Post.created_at.desc(), Post.id)
                .limit(size)
            )
        )
        return list(await self._posts.cards(session, viewer, posts))

"""Posts, threaded comments, reactions, club feeds and the home feed.

Who may read what:

- a club post follows its club's content rules (``shared.domain.clubs.services``): public
  clubs show it to everyone but banned users, private and secret clubs to active members;
  writing (posting, commenting, reacting) needs an active membership;
- a profile (creator) post is ``public`` to everyone, ``followers`` to people who follow its
  author, and ``subscribers`` to its author and to users with an active platform subscription
  (``users.premium_tier`` set) or a subscription to one of the author's member tiers; others get
  404 as for any post they may not read (locked posts are not listed, so their existence is not shown);
- nobody sees posts or comments of a user they block or are blocked by;
- a deleted post is gone (404); a deleted comment stays as a tombstone so its replies keep their place.

Home feed: merge on read, not fan-out on write. The feed of one user is the union of a few
sources (their clubs, the people they follow or befriend, themselves), each read with a
LATERAL keyset scan over its own ``(..., created_at, id)`` index, merged and cut at the page
size. A page costs O(sources * page) index reads whatever the total volume, membership and
follow changes apply at once (nothing to backfill or retract, which also keeps private
content from lingering in someone's copied feed after they leave or are banned), and no
worker job sits between a post and its readers. ``loadtests/feed_page.py`` measures a page
at 10,000 eligible items against a plain indexed ``LIMIT 20`` in the same run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, true, tuple_, union_all
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute, aliased

from shared import bus, ids
from shared.clock import utcnow
from shared.domain.auth.tokens import AccessClaims
from shared.domain.clubs.models import Club, ClubMembership, ClubSpace
from shared.domain.clubs.services import (
    active_club_ids,
    can_moderate,
    check_can_post,
    content_readable_by,
    readable_club,
)
from shared.domain.events.models import Event, EventStatus
from shared.domain.events.models import Visibility as EventVisibility
from shared.domain.media.models import Purpose
from shared.domain.media.services import MediaService
from shared.domain.payments.boosts import sponsored_events_query
from shared.domain.payments.member_tiers import subscribed_to_creator
from shared.domain.posts.models import (
    MAX_COMMENT_DEPTH,
    Comment,
    CommentReaction,
    Post,
    PostReaction,
    ReactionKind,
    Visibility,
)
from shared.domain.posts.schemas import (
    Author,
    ClubPostCreate,
    ClubRef,
    CommentCreate,
    CommentItem,
    CommentUpdate,
    CreatedPost,
    CreatorPostCreate,
    EventCard,
    FeedItem,
    PostItem,
    PostUpdate,
    ReactionSummary,
)
from shared.domain.social.models import Follow, Friendship
from shared.domain.social.services import is_blocked_between, not_blocked_with
from shared.domain.users.models import User
from shared.domain.users.services import normalize_interests
from shared.errors import FieldError, InvalidInput, NotFound, PermissionDenied
from shared.pagination import Page, clamp_limit, decode_cursor, make_page

# Boosted events from the viewer's city shown above the first home-feed page.
SPONSORED_PER_PAGE = 2


class _TimeKey(msgspec.Struct, frozen=True):
    """Keyset position in a newest-first list: the last item's time and id."""

    t: datetime
    id: uuid.UUID


class _IdKey(msgspec.Struct, frozen=True):
    """Keyset position in an oldest-first list of UUIDv7 rows."""

    id: uuid.UUID


def _body_id(prefix: ids.Prefix, value: str, field: str) -> uuid.UUID:
    """A public id from a request body or query: malformed is a validation error."""
    try:
        return ids.decode(prefix, value)
    except ids.InvalidId:
        raise InvalidInput(errors=[FieldError(field, f"not a valid {prefix.value}_ id")]) from None


def _text(value: str, field: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise InvalidInput(errors=[FieldError(field, "must not be blank")])
    return stripped


def _media(values: Sequence[str]) -> list[uuid.UUID]:
    decoded = [_body_id(ids.Prefix.MEDIA, v, f"media_ids[{i}]") for i, v in enumerate(values)]
    return list(dict.fromkeys(decoded))


def parse_reaction_kind(value: str) -> ReactionKind:
    """A reaction kind from a path; 422 for anything outside the fixed set."""
    try:
        return ReactionKind(value)
    except ValueError:
        allowed = ", ".join(k.value for k in ReactionKind)
        raise InvalidInput(
            f"unknown reaction kind; use one of {allowed}",
            code="unknown_reaction_kind",
            errors=[FieldError("kind", f"must be one of {allowed}")],
        ) from None


def _profile_post_visible(viewer_id: uuid.UUID, follows: ColumnElement[bool]) -> ColumnElement[bool]:
    """SQL: a profile post is visible to the viewer, given whether the viewer follows its author."""
    # An alias, so the subquery never correlates with a ``users`` join of the outer query.
    viewer = aliased(User)
    subscribed = select(literal(True)).where(viewer.id == viewer_id, viewer.premium_tier.is_not(None)).exists()
    return or_(
        Post.author_id == viewer_id,
        Post.visibility == Visibility.PUBLIC.value,
        and_(Post.visibility == Visibility.FOLLOWERS.value, follows),
        and_(
            Post.visibility == Visibility.SUBSCRIBERS.value,
            or_(subscribed, subscribed_to_creator(viewer_id, Post.author_id)),
        ),
    )


def readable_posts(viewer_id: uuid.UUID) -> ColumnElement[bool]:
    """SQL: the post row is one the viewer may read (search uses this too)."""
    follows = (
        select(literal(True)).where(Follow.follower_id == viewer_id, Follow.followee_id == Post.author_id).exists()
    )
    return and_(
        Post.deleted_at.is_(None),
        not_blocked_with(viewer_id, Post.author_id),
        or_(
            and_(Post.club_id.is_not(None), content_readable_by(viewer_id, Post.club_id)),
            and_(Post.club_id.is_(None), _profile_post_visible(viewer_id, follows)),
        ),
    )


class PostService:
    """Every post, comment, reaction and feed verb; each is one transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession] | None = None,
        clock: Callable[[], datetime] = utcnow,
        *,
        media: MediaService,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions
        self._clock = clock
        self._media = media

    # ---- posts ---------------------------------------------------------------------------

    async def create_club_post(self, actor: AccessClaims, club_id: uuid.UUID, data: ClubPostCreate) -> CreatedPost:
        """Post in a club (optionally in one of its spaces) as an active member with posting rights."""
        content = _text(data.content, "content")
        media = _media(data.media_ids)
        event_id = _body_id(ids.Prefix.EVENT, data.event_id, "event_id") if data.event_id else None
        space_id = _body_id(ids.Prefix.SPACE, data.space_id, "space_id") if data.space_id else None
        async with self._sessions.begin() as session:
            club, membership = await readable_club(session, club_id, actor.user_id)
            space = None
            if space_id is not None:
                space = await session.get(ClubSpace, space_id)
                if space is None or space.club_id != club.id:
                    raise InvalidInput(
                        "no such space in this club",
                        code="space_not_found",
                        errors=[FieldError("space_id", "not a space of this club")],
                    )
            check_can_post(club, membership, space)
            post = await self._insert(session, actor.user_id, content, media, event_id, data.tags, club.id, space_id)
        return CreatedPost(id=ids.encode(ids.Prefix.POST, post.id), created_at=post.created_at)

    async def create_profile_post(self, actor: AccessClaims, data: CreatorPostCreate) -> CreatedPost:
        """Post on the caller's own profile with a visibility."""
        content = _text(data.content, "content")
        media = _media(data.media_ids)
        event_id = _body_id(ids.Prefix.EVENT, data.event_id, "event_id") if data.event_id else None
        async with self._sessions.begin() as session:
            post = await self._insert(
                session, actor.user_id, content, media, event_id, data.tags, None, None, data.visibility
            )
        return CreatedPost(id=ids.encode(ids.Prefix.POST, post.id), created_at=post.created_at)

    async def _insert(
        self,
        session: AsyncSession,
        author_id: uuid.UUID,
        content: str,
        media: list[uuid.UUID],
        event_id: uuid.UUID | None,
        tags: list[str],
        club_id: uuid.UUID | None,
        space_id: uuid.UUID | None,
        visibility: str | None = None,
    ) -> Post:
        now = self._clock()
        post = Post(
            id=ids.uuid7(),
            author_id=author_id,
            club_id=club_id,
            space_id=space_id,
            visibility=visibility,
            content=content,
            media_ids=media,
            event_id=event_id,
            tags=normalize_interests(tags),
            created_at=now,
            updated_at=now,
        )
        session.add(post)
        await session.flush()
        # Inside the post's transaction: a refused item leaves no post behind.
        await self._media.claim_for_attachment(session, author_id, media, Purpose.POST, post.id)
        await bus.record(session, bus.PostCreated(post_id=post.id, author_id=author_id, club_id=club_id))
        return post

    async def get_post(self, actor: AccessClaims, post_id: uuid.UUID) -> PostItem:
        """One post as a card, if the caller may read it."""
        async with self._reads() as session:
            post, _ = await self._readable(session, post_id, actor.user_id)
            return (await self.cards(session, actor.user_id, [post]))[0]

    async def update_post(self, actor: AccessClaims, post_id: uuid.UUID, patch: PostUpdate) -> PostItem:
        """Edit one's own post; ``edited_at`` records when."""
        async with self._sessions.begin() as session:
            post, _ = await self._readable(session, post_id, actor.user_id, lock=True)
            if post.author_id != actor.user_id:
                raise PermissionDenied("only the author can edit a post", code="not_author")
            if patch.content is not msgspec.UNSET:
                post.content = _text(patch.content, "content")
            if patch.media_ids is not msgspec.UNSET:
                wanted = _media(patch.media_ids)
                await self._media.claim_for_attachment(session, actor.user_id, wanted, Purpose.POST, post.id)
                # Items taken off the post stay the author's, free to attach elsewhere.
                await self._media.release_attachment(session, Purpose.POST, post.id, keep=wanted)
                post.media_ids = wanted
            if patch.tags is not msgspec.UNSET:
                post.tags = normalize_interests(patch.tags)
            if patch.visibility is not msgspec.UNSET:
                if post.club_id is not None:
                    raise InvalidInput(errors=[FieldError("visibility", "club posts follow their club's privacy")])
                post.visibility = patch.visibility
            post.edited_at = self._clock()
            await session.flush()
            return (await self.cards(session, actor.user_id, [post]))[0]

    async def delete_post(self, actor: AccessClaims, post_id: uuid.UUID) -> None:
        """Soft-delete a post: its author, or a moderator of its club."""
        async with self._sessions.begin() as session:
            post, membership = await self._readable(session, post_id, actor.user_id, lock=True)
            if post.author_id != actor.user_id and not (post.club_id is not None and can_moderate(membership)):
                raise PermissionDenied("only the author or a club moderator can delete a post", code="not_allowed")
            post.deleted_at = self._clock()
            post.deleted_by = actor.user_id
            post.pinned_at = None
            # The post's media goes with it (issue 8): rows now, objects by the purge job.
            await self._media.discard_attached(session, Purpose.POST, post.id)

    async def set_pinned(self, actor: AccessClaims, post_id: uuid.UUID, *, pinned: bool) -> PostItem:
        """Pin or unpin: a club moderator for club posts, the author for profile posts."""
        async with self._sessions.begin() as session:
            post, membership = await self._readable(session, post_id, actor.user_id, lock=True)
            allowed = can_moderate(membership) if post.club_id is not None else post.author_id == actor.user_id
            if not allowed:
                raise PermissionDenied("only moderators can pin posts", code="insufficient_role")
            if pinned and post.pinned_at is None:
                post.pinned_at = self._clock()
            elif not pinned:
                post.pinned_at = None
            await session.flush()
            return (await self.cards(session, actor.user_id, [post]))[0]

    # ---- lists and feeds ----------------------------------------------------------------------

    async def club_feed(
        self,
        actor: AccessClaims,
        club_id: uuid.UUID,
        *,
        space_id: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[FeedItem]:
        """A club's posts and newly published events, newest first (a space's feed: its posts only)."""
        size = clamp_limit(limit)
        after = decode_cursor(cursor, _TimeKey) if cursor is not None else None
        space = _body_id(ids.Prefix.SPACE, space_id, "space_id") if space_id is not None else None
        conditions: list[ColumnElement[bool]] = [
            Post.club_id == club_id,
            Post.deleted_at.is_(None),
            not_blocked_with(actor.user_id, Post.author_id),
            _keyset(after, Post.created_at, Post.id),
        ]
        if space is not None:
            conditions.append(Post.space_id == space)
        async with self._reads() as session:
            _, membership = await readable_club(session, club_id, actor.user_id)
            posts = select(Post.created_at, Post.id, literal("post").label("type")).where(*conditions)
            branches: list[Select[Any, uuid.UUID, str]] = [
                posts.order_by(Post.created_at.desc(), Post.id.desc()).limit(size + 1)
            ]
            if space is None:
                member = membership is not None and membership.status == "active"
                events = _feed_events(actor.user_id, after, member_of_club=member).where(Event.club_id == club_id)
                branches.append(events.order_by(Event.published_at.desc(), Event.id.desc()).limit(size + 1))
            merged = union_all(*(b.subquery().select() for b in branches)).subquery("club_feed")
            rows = list(
                (
                    await session.execute(
                        select(merged.c.created_at, merged.c.id, merged.c.type)
                        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
                        .limit(size + 1)
                    )
                ).tuples()
            )
            page = make_page(rows, size, lambda r: _TimeKey(t=r[0], id=r[1]))
            return Page(items=await self._feed_items(session, actor.user_id, page.items), next_cursor=page.next_cursor)

    async def profile_posts(
        self, actor: AccessClaims, user_id: uuid.UUID, cursor: str | None, limit: int | None
    ) -> Page[PostItem]:
        """A user's profile posts the caller may see, newest first."""
        size = clamp_limit(limit)
        async with self._reads() as session:
            exists_ = await session.scalar(select(User.id).where(User.id == user_id))
            if exists_ is None or await is_blocked_between(session, actor.user_id, user_id):
                raise NotFound("no such user", code="user_not_found")
            follows = await session.scalar(
                select(literal(True)).where(Follow.follower_id == actor.user_id, Follow.followee_id == user_id)
            )
            conditions: list[ColumnElement[bool]] = [
                Post.author_id == user_id,
                Post.club_id.is_(None),
                Post.deleted_at.is_(None),
                _profile_post_visible(actor.user_id, literal(bool(follows))),
            ]
            if cursor is not None:
                key = decode_cursor(cursor, _TimeKey)
                conditions.append(tuple_(Post.created_at, Post.id) < tuple_(literal(key.t), literal(key.id)))
            posts = list(
                await session.scalars(
                    select(Post).where(*conditions).order_by(Post.created_at.desc(), Post.id.desc()).limit(size + 1)
                )
            )
            page = make_page(posts, size, lambda p: _TimeKey(t=p.created_at, id=p.id))
            return Page(items=await self.cards(session, actor.user_id, page.items), next_cursor=page.next_cursor)

    async def home_feed(self, actor: AccessClaims, cursor: str | None, limit: int | None) -> Page[FeedItem]:
        """Posts of the caller's clubs, friends, followed creators and the caller, newest first."""
        size = clamp_limit(limit)
        key = decode_cursor(cursor, _TimeKey) if cursor is not None else None
        keys = home_feed_keys(actor.user_id, key, size + 1)
        async with self._reads() as session:
            rows = list((await session.execute(keys)).tuples())
            page = make_page(rows, size, lambda r: _TimeKey(t=r[0], id=r[1]))
            sponsored = await _sponsored_events(session, actor.user_id, self._clock()) if cursor is None else []
            items = await self._feed_items(session, actor.user_id, [r for r in page.items if r[1] not in sponsored])
            cards = await _event_cards(session, sponsored)
            top: list[FeedItem] = [msgspec.structs.replace(cards[i], sponsored=True) for i in sponsored if i in cards]
            return Page(items=top + items, next_cursor=page.next_cursor)

    async def _feed_items(
        self, session: AsyncSession, viewer_id: uuid.UUID, rows: Sequence[tuple[datetime, uuid.UUID, str]]
    ) -> list[FeedItem]:
        """Cards for ``(time, id, type)`` feed keys, in their order."""
        post_ids = [r[1] for r in rows if r[2] == "post"]
        event_ids = [r[1] for r in rows if r[2] == "event"]
        posts = {p.id: p for p in await session.scalars(select(Post).where(Post.id.in_(post_ids)))}
        cards: dict[uuid.UUID, FeedItem] = dict(
            zip(post_ids, await self.cards(session, viewer_id, [posts[i] for i in post_ids]), strict=True)
        )
        cards.update(await _event_cards(session, event_ids))
        return [cards[r[1]] for r in rows]

    # ---- comments --------------------------------------------------------------------------

    async def add_comment(self, actor: AccessClaims, post_id: uuid.UUID, data: CommentCreate) -> CommentItem:
        """Comment on a post, or reply to one of its comments (at most three levels deep)."""
        content = _text(data.content, "content")
        parent_id = _body_id(ids.Prefix.COMMENT, data.parent_id, "parent_id") if data.parent_id else None
        now = self._clock()
        async with self._sessions.begin() as session:
            post, membership = await self._readable(session, post_id, actor.user_id)
            _check_can_engage(post, membership)
            depth = 0
            if parent_id is not None:
                parent = await session.get(Comment, parent_id)
                if parent is None or parent.post_id != post.id:
                    raise InvalidInput(
                        "the parent comment is not on this post",
                        code="parent_not_on_post",
                        errors=[FieldError("parent_id", "not a comment of this post")],
                    )
                if parent.deleted_at is not None:
                    raise InvalidInput(errors=[FieldError("parent_id", "the comment was deleted")])
                if parent.depth >= MAX_COMMENT_DEPTH:
                    raise InvalidInput(
                        f"replies nest at most {MAX_COMMENT_DEPTH + 1} levels deep",
                        code="thread_too_deep",
                        errors=[FieldError("parent_id", "reply to a comment higher up the thread")],
                    )
                depth = parent.depth + 1
            comment = Comment(
                id=ids.uuid7(),
                post_id=post.id,
                parent_id=parent_id,
                author_id=actor.user_id,
                depth=depth,
                content=content,
                created_at=now,
                updated_at=now,
            )
            session.add(comment)
            await session.flush()
            await bus.record(
                session,
                bus.CommentCreated(
                    comment_id=comment.id,
                    post_id=post.id,
                    author_id=actor.user_id,
                    post_author_id=post.author_id,
                    parent_id=parent_id,
                    club_id=post.club_id,
                ),
            )
            return (await self._comment_items(session, actor.user_id, [comment]))[0]

    async def list_comments(
        self,
        actor: AccessClaims,
        post_id: uuid.UUID,
        *,
        parent_id: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> Page[CommentItem]:
        """One level of a thread, oldest first: top-level comments, or the replies to ``parent_id``."""
        size = clamp_limit(limit)
        parent = _body_id(ids.Prefix.COMMENT, parent_id, "parent_id") if parent_id else None
        conditions: list[ColumnElement[bool]] = [
            Comment.post_id == post_id,
            Comment.parent_id == parent if parent is not None else Comment.parent_id.is_(None),
            not_blocked_with(actor.user_id, Comment.author_id),
        ]
        if cursor is not None:
            conditions.append(Comment.id > decode_cursor(cursor, _IdKey).id)
        async with self._reads() as session:
            await self._readable(session, post_id, actor.user_id)
            if parent is not None:
                found = await session.scalar(select(Comment.post_id).where(Comment.id == parent))
                if found != post_id:
                    raise InvalidInput(
                        "the parent comment is not on this post",
                        code="parent_not_on_post",
                        errors=[FieldError("parent_id", "not a comment of this post")],
                    )
            comments = list(
                await session.scalars(select(Comment).where(*conditions).order_by(Comment.id).limit(size + 1))
            )
            page = make_page(comments, size, lambda c: _IdKey(id=c.id))
            return Page(
                items=await self._comment_items(session, actor.user_id, page.items), next_cursor=page.next_cursor
            )

    async def update_comment(self, actor: AccessClaims, comment_id: uuid.UUID, data: CommentUpdate) -> CommentItem:
        """Edit one's own comment."""
        content = _text(data.content, "content")
        async with self._sessions.begin() as session:
            comment, _, _ = await self._readable_comment(session, comment_id, actor.user_id, lock=True)
            if comment.author_id != actor.user_id:
                raise PermissionDenied("only the author can edit a comment", code="not_author")
            comment.content = content
            comment.edited_at = self._clock()
            await session.flush()
            return (await self._comment_items(session, actor.user_id, [comment]))[0]

    async def delete_comment(self, actor: AccessClaims, comment_id: uuid.UUID) -> None:
        """Tombstone a comment: its author, the club's moderators, or the author of a profile post."""
        async with self._sessions.begin() as session:
            comment, post, membership = await self._readable_comment(session, comment_id, actor.user_id, lock=True)
            moderator = can_moderate(membership) if post.club_id is not None else post.author_id == actor.user_id
            if comment.author_id != actor.user_id and not moderator:
                raise PermissionDenied("only the author or a moderator can delete a comment", code="not_allowed")
            comment.content = ""
            comment.deleted_at = self._clock()

    # ---- reactions -------------------------------------------------------------------------

    async def react_to_post(
        self, actor: AccessClaims, post_id: uuid.UUID, kind: ReactionKind, *, add: bool
    ) -> ReactionSummary:
        """Add (idempotently) or remove the caller's reaction of one kind on a post."""
        async with self._sessions.begin() as session:
            post, membership = await self._readable(session, post_id, actor.user_id)
            _check_can_engage(post, membership)
            if add:
                await session.execute(
                    insert(PostReaction)
                    .values(post_id=post.id, user_id=actor.user_id, kind=kind.value, created_at=self._clock())
                    .on_conflict_do_nothing()
                )
            else:
                await session.execute(
                    sql_delete(PostReaction).where(
                        PostReaction.post_id == post.id,
                        PostReaction.user_id == actor.user_id,
                        PostReaction.kind == kind.value,
                    )
                )
            counts, mine = (await _reaction_counts(session, PostReaction, [post.id], actor.user_id)).get(
                post.id, ({}, [])
            )
        return ReactionSummary(reactions=counts, my_reactions=mine)

    async def react_to_comment(
        self, actor: AccessClaims, comment_id: uuid.UUID, kind: ReactionKind, *, add: bool
    ) -> ReactionSummary:
        """Add (idempotently) or remove the caller's reaction of one kind on a comment."""
        async with self._sessions.begin() as session:
            comment, post, membership = await self._readable_comment(session, comment_id, actor.user_id)
            _check_can_engage(post, membership)
            if comment.deleted_at is not None:
                raise NotFound("no such comment", code="comment_not_found")
            if add:
                await session.execute(
                    insert(CommentReaction)
                    .values(comment_id=comment.id, user_id=actor.user_id, kind=kind.value, created_at=self._clock())
                    .on_conflict_do_nothing()
                )
            else:
                await session.execute(
                    sql_delete(CommentReaction).where(
                        CommentReaction.comment_id == comment.id,
                        CommentReaction.user_id == actor.user_id,
                        CommentReaction.kind == kind.value,
                    )
                )
            counts, mine = (await _reaction_counts(session, CommentReaction, [comment.id], actor.user_id)).get(
                comment.id, ({}, [])
            )
        return ReactionSummary(reactions=counts, my_reactions=mine)

    # ---- shared steps --------------------------------------------------------------------

    async def _readable(
        self, session: AsyncSession, post_id: uuid.UUID, viewer_id: uuid.UUID, *, lock: bool = False
    ) -> tuple[Post, ClubMembership | None]:
        """The post and the viewer's club membership; 404 (or the club's 403) unless the viewer may read it."""
        query = select(Post).where(Post.id == post_id)
        if lock:
            query = query.with_for_update()
        post = await session.scalar(query)
        if post is None or post.deleted_at is not None:
            raise NotFound("no such post", code="post_not_found")
        membership = None
        if post.club_id is not None:
            _, membership = await readable_club(session, post.club_id, viewer_id)
        elif post.author_id != viewer_id:
            follows = await session.scalar(
                select(literal(True)).where(Follow.follower_id == viewer_id, Follow.followee_id == post.author_id)
            )
            visible = post.visibility == Visibility.PUBLIC or (
                post.visibility == Visibility.FOLLOWERS and bool(follows)
            )
            if post.visibility == Visibility.SUBSCRIBERS:
                tier = await session.scalar(select(User.premium_tier).where(User.id == viewer_id))
                fan = await session.scalar(select(subscribed_to_creator(viewer_id, literal(post.author_id))))
                visible = tier is not None or bool(fan)
            if not visible:
                raise NotFound("no such post", code="post_not_found")
        if post.author_id != viewer_id and await is_blocked_between(session, viewer_id, post.author_id):
            raise NotFound("no such post", code="post_not_found")
        return post, membership

    async def _readable_comment(
        self, session: AsyncSession, comment_id: uuid.UUID, viewer_id: uuid.UUID, *, lock: bool = False
    ) -> tuple[Comment, Post, ClubMembership | None]:
        query = select(Comment).where(Comment.id == comment_id)
        if lock:
            query = query.with_for_update()
        comment = await session.scalar(query)
        if comment is None:
            raise NotFound("no such comment", code="comment_not_found")
        post, membership = await self._readable(session, comment.post_id, viewer_id)
        if comment.author_id != viewer_id and await is_blocked_between(session, viewer_id, comment.author_id):
            raise NotFound("no such comment", code="comment_not_found")
        return comment, post, membership

    async def cards(self, session: AsyncSession, viewer_id: uuid.UUID, posts: Sequence[Post]) -> list[PostItem]:
        """Posts as cards: authors, clubs, reaction counts and comment counts in one query each."""
        if not posts:
            return []
        post_ids = [p.id for p in posts]
        authors = await _authors(session, {p.author_id for p in posts})
        club_ids = {p.club_id for p in posts if p.club_id is not None}
        clubs = {c.id: c for c in await session.scalars(select(Club).where(Club.id.in_(club_ids)))} if club_ids else {}
        reactions = await _reaction_counts(session, PostReaction, post_ids, viewer_id)
        media = await self._media.views([m for p in posts for m in p.media_ids])
        comment_counts = dict(
            (
                await session.execute(
                    select(Comment.post_id, func.count())
                    .where(Comment.post_id.in_(post_ids), Comment.deleted_at.is_(None))
                    .group_by(Comment.post_id)
                )
            )
            .tuples()
            .all()
        )
        cards = []
        for post in posts:
            counts, mine = reactions.get(post.id, ({}, []))
            club = clubs.get(post.club_id) if post.club_id is not None else None
            cards.append(
                PostItem(
                    id=ids.encode(ids.Prefix.POST, post.id),
                    author=authors[post.author_id],
                    club=ClubRef(id=ids.encode(ids.Prefix.CLUB, club.id), name=club.name, slug=club.slug)
                    if club is not None
                    else None,
                    space_id=ids.encode(ids.Prefix.SPACE, post.space_id) if post.space_id else None,
                    visibility=post.visibility,  # type: ignore[arg-type]
                    content=post.content,
                    media=[media[m] for m in post.media_ids if m in media],
                    event_id=ids.encode(ids.Prefix.EVENT, post.event_id) if post.event_id else None,
                    tags=post.tags,
                    reactions=counts,
                    my_reactions=mine,
                    comment_count=comment_counts.get(post.id, 0),
                    pinned=post.pinned_at is not None,
                    created_at=post.created_at,
                    edited_at=post.edited_at,
                )
            )
        return cards

    async def _comment_items(
        self, session: AsyncSession, viewer_id: uuid.UUID, comments: Sequence[Comment]
    ) -> list[CommentItem]:
        if not comments:
            return []
        comment_ids = [c.id for c in comments]
        authors = await _authors(session, {c.author_id for c in comments if c.deleted_at is None})
        reactions = await _reaction_counts(session, CommentReaction, comment_ids, viewer_id)
        replies = dict(
            (
                await session.execute(
                    select(Comment.parent_id, func.count())
                    .where(Comment.parent_id.in_(comment_ids))
                    .group_by(Comment.parent_id)
                )
            )
            .tuples()
            .all()
        )
        items = []
        for comment in comments:
            deleted = comment.deleted_at is not None
            counts, mine = reactions.get(comment.id, ({}, []))
            items.append(
                CommentItem(
                    id=ids.encode(ids.Prefix.COMMENT, comment.id),
                    post_id=ids.encode(ids.Prefix.POST, comment.post_id),
                    parent_id=ids.encode(ids.Prefix.COMMENT, comment.parent_id) if comment.parent_id else None,
                    depth=comment.depth,
                    author=None if deleted else authors[comment.author_id],
                    content=None if deleted else comment.content,
                    deleted=deleted,
                    reply_count=replies.get(comment.id, 0),
                    reactions={} if deleted else counts,
                    my_reactions=[] if deleted else mine,
                    created_at=comment.created_at,
                    edited_at=comment.edited_at,
                )
            )
        return items


def home_feed_keys(viewer_id: uuid.UUID, after: _TimeKey | None, size: int) -> Select[datetime, uuid.UUID, str]:
    """The ``(created_at, id, type)`` keys of one home-feed page; each source is a LATERAL keyset scan.

    New item types (events, media) join as further branches of the final UNION ALL.
    """

    def keyset(created: InstrumentedAttribute[Any], row_id: InstrumentedAttribute[uuid.UUID]) -> ColumnElement[bool]:
        return _keyset(after, created, row_id)

    clubs = active_club_ids(viewer_id).subquery("my_clubs")
    club_posts = (
        select(Post.created_at, Post.id)
        .where(
            Post.club_id == clubs.c.club_id,
            Post.deleted_at.is_(None),
            keyset(Post.created_at, Post.id),
            not_blocked_with(viewer_id, Post.author_id),
        )
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(size)
        .lateral("club_posts")
    )
    from_clubs = select(club_posts.c.created_at, club_posts.c.id).select_from(clubs).join(club_posts, true())

    # Whose profile posts: people the viewer follows (subscribers-only ones if the viewer subscribes), friends
    # (public ones), and the viewer. Blocks sever friendships and follows, and are checked again.
    followed = select(Follow.followee_id.label("author_id"), literal(True).label("follows")).where(
        Follow.follower_id == viewer_id
    )
    friends_low = select(Friendship.user_high_id.label("author_id"), literal(False).label("follows")).where(
        Friendship.user_low_id == viewer_id
    )
    friends_high = select(Friendship.user_low_id.label("author_id"), literal(False).label("follows")).where(
        Friendship.user_high_id == viewer_id
    )
    me = select(literal(viewer_id).label("author_id"), literal(True).label("follows"))
    sources = union_all(followed, friends_low, friends_high, me).subquery("sources")
    authors = (
        select(sources.c.author_id, func.bool_or(sources.c.follows).label("follows"))
        .group_by(sources.c.author_id)
        .subquery("authors")
    )
    profile_posts = (
        select(Post.created_at, Post.id)
        .where(
            Post.author_id == authors.c.author_id,
            Post.club_id.is_(None),
            Post.deleted_at.is_(None),
            keyset(Post.created_at, Post.id),
            _profile_post_visible(viewer_id, authors.c.follows),
            not_blocked_with(viewer_id, Post.author_id),
        )
        .order_by(Post.created_at.desc(), Post.id.desc())
        .limit(size)
        .lateral("profile_posts")
    )
    from_people = (
        select(profile_posts.c.created_at, profile_posts.c.id).select_from(authors).join(profile_posts, true())
    )

    # Events: those newly published in the viewer's clubs, and public ones the people above
    # organize outside those clubs (so the two branches never return the same event).
    my_clubs = active_club_ids(viewer_id).subquery("my_event_clubs")
    club_events = (
        _feed_events(viewer_id, after, member_of_club=True)
        .where(Event.club_id == my_clubs.c.club_id)
        .order_by(Event.published_at.desc(), Event.id.desc())
        .limit(size)
        .lateral("club_events")
    )
    from_club_events = (
        select(club_events.c.created_at, club_events.c.id).select_from(my_clubs).join(club_events, true())
    )
    people_events = (
        _feed_events(viewer_id, after, member_of_club=False)
        .where(
            Event.organizer_id == authors.c.author_id,
            Event.visibility == EventVisibility.PUBLIC.value,
            or_(Event.club_id.is_(None), Event.club_id.not_in(active_club_ids(viewer_id))),
        )
        .order_by(Event.published_at.desc(), Event.id.desc())
        .limit(size)
        .lateral("people_events")
    )
    from_people_events = (
        select(people_events.c.created_at, people_events.c.id).select_from(authors).join(people_events, true())
    )

    # The branches are disjoint (club posts, profile posts, club events, other events), so no
    # de-duplication is needed.
    posts = union_all(from_clubs, from_people).subquery("feed_posts")
    events = union_all(from_club_events, from_people_events).subquery("feed_events")
    merged = union_all(
        select(posts.c.created_at, posts.c.id, literal("post").label("type")),
        select(events.c.created_at, events.c.id, literal("event").label("type")),
    ).subquery("feed")
    return (
        select(merged.c.created_at, merged.c.id, merged.c.type)
        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
        .limit(size)
    )


def _keyset(after: _TimeKey | None, created: Any, row_id: Any) -> ColumnElement[bool]:
    """SQL: the row comes after the cursor in a newest-first ``(time, id)`` order."""
    if after is None:
        return true()
    return tuple_(created, row_id) < tuple_(literal(after.t), literal(after.id))


def _feed_events(
    viewer_id: uuid.UUID, after: _TimeKey | None, *, member_of_club: bool
) -> Select[datetime | None, uuid.UUID, str]:
    """``(published_at, id)`` of published events the viewer may see in a feed, newest first.

    The events service's rules (``GET /v1/events/{id}``): drafts only for editors and cancelled
    events are no news, so only ``published`` ones; ``club`` events only for the club's active
    members (``member_of_club``); ``private`` events are unlisted and stay out of feeds; and
    nothing organized by someone the viewer blocks or is blocked by.
    """
    shown = [EventVisibility.PUBLIC.value] + ([EventVisibility.CLUB.value] if member_of_club else [])
    return select(Event.published_at.label("created_at"), Event.id, literal("event").label("type")).where(
        Event.status == EventStatus.PUBLISHED.value,
        Event.published_at.is_not(None),
        Event.visibility.in_(shown),
        not_blocked_with(viewer_id, Event.organizer_id),
        _keyset(after, Event.published_at, Event.id),
    )


async def _event_cards(session: AsyncSession, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EventCard]:
    """Feed cards of events, by id."""
    if not event_ids:
        return {}
    events = list(await session.scalars(select(Event).where(Event.id.in_(event_ids))))
    authors = await _authors(session, {e.organizer_id for e in events})
    club_ids = {e.club_id for e in events if e.club_id is not None}
    clubs = {c.id: c for c in await session.scalars(select(Club).where(Club.id.in_(club_ids)))} if club_ids else {}
    cards = {}
    for event in events:
        club = clubs.get(event.club_id) if event.club_id is not None else None
        assert event.published_at is not None
        cards[event.id] = EventCard(
            id=ids.encode(ids.Prefix.EVENT, event.id),
            title=event.title,
            start_time=event.start_time,
            end_time=event.end_time,
            timezone=event.timezone,
            location_name=event.location_name,
            kind=event.kind,
            club=ClubRef(id=ids.encode(ids.Prefix.CLUB, club.id), name=club.name, slug=club.slug)
            if club is not None
            else None,
            organizer=authors[event.organizer_id],
            attendees_count=event.seats_taken,
            published_at=event.published_at,
        )
    return cards


async def _sponsored_events(session: AsyncSession, viewer_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Boosted events in the viewer's city for the top of the first home-feed page (none without a city)."""
    city = await session.scalar(select(User.city).where(User.id == viewer_id))
    if not city or not city.strip():
        return []
    query = sponsored_events_query(now, city, SPONSORED_PER_PAGE).where(not_blocked_with(viewer_id, Event.organizer_id))
    return list(await session.scalars(query))


def _check_can_engage(post: Post, membership: ClubMembership | None) -> None:
    """Commenting and reacting on a club post needs an active membership, as posting does."""
    if post.club_id is not None and (membership is None or membership.status != "active"):
        raise PermissionDenied("only members can take part in this club", code="members_only")


async def _authors(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, Author]:
    if not user_ids:
        return {}
    users = await session.scalars(select(User).where(User.id.in_(user_ids)))
    return {
        u.id: Author(id=ids.encode(ids.Prefix.USER, u.id), display_name=u.display_name, avatar_url=u.avatar_url)
        for u in users
    }


async def _reaction_counts(
    session: AsyncSession,
    model: type[PostReaction] | type[CommentReaction],
    target_ids: Sequence[uuid.UUID],
    viewer_id: uuid.UUID,
) -> dict[uuid.UUID, tuple[dict[str, int], list[str]]]:
    """Counts per kind and the viewer's kinds, counted from the rows (so always consistent)."""
    target = PostReaction.post_id if model is PostReaction else CommentReaction.comment_id
    user_id, kind = model.user_id, model.kind
    rows = (
        await session.execute(
            select(target, kind, func.count(), func.bool_or(user_id == viewer_id))
            .where(target.in_(target_ids))
            .group_by(target, kind)
            .order_by(target, kind)
        )
    ).tuples()
    out: dict[uuid.UUID, tuple[dict[str, int], list[str]]] = {}
    for target_id, kind_name, count, mine in rows:
        counts, my_kinds = out.setdefault(target_id, ({}, []))
        counts[kind_name] = count
        if mine:
            my_kinds.append(kind_name)
    return out

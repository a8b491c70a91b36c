"""Posts in clubs and on profiles, threaded comments, reactions, the club feed and the home feed."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import parse_id
from shared import ids
from shared.domain.auth.tokens import AccessClaims
from shared.domain.posts.models import ReactionKind
from shared.domain.posts.schemas import (
    ClubPostCreate,
    CommentCreate,
    CommentItem,
    CommentUpdate,
    CreatedPost,
    CreatorPostCreate,
    FeedItem,
    PostItem,
    PostUpdate,
    ReactionCreate,
    ReactionSummary,
)
from shared.domain.posts.services import PostService, parse_reaction_kind
from shared.pagination import Page


def _post(post_id: str) -> uuid.UUID:
    return parse_id(ids.Prefix.POST, post_id)


def _comment(comment_id: str) -> uuid.UUID:
    return parse_id(ids.Prefix.COMMENT, comment_id)


class PostController(Controller):
    """Posts and their comments and reactions."""

    path = "/v1"
    tags = ["posts"]

    @post("/clubs/{club_id:str}/posts", status_code=HTTP_201_CREATED)
    async def create_club_post(
        self, club_id: str, data: ClubPostCreate, post_service: PostService, caller: AccessClaims
    ) -> CreatedPost:
        """Post in a club (members with posting rights)."""
        return await post_service.create_club_post(caller, parse_id(ids.Prefix.CLUB, club_id), data)

    @get("/clubs/{club_id:str}/feed")
    async def club_feed(
        self,
        club_id: str,
        post_service: PostService,
        caller: AccessClaims,
        space_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[FeedItem]:
        """A club's posts, newest first; private and secret clubs only for members."""
        return await post_service.club_feed(
            caller, parse_id(ids.Prefix.CLUB, club_id), space_id=space_id, cursor=cursor, limit=limit
        )

    @post("/users/me/posts", status_code=HTTP_201_CREATED)
    async def create_profile_post(
        self, data: CreatorPostCreate, post_service: PostService, caller: AccessClaims
    ) -> CreatedPost:
        """Post on the caller's own profile."""
        return await post_service.create_profile_post(caller, data)

    @get("/users/me/posts")
    async def my_posts(
        self, post_service: PostService, caller: AccessClaims, cursor: str | None = None, limit: int | None = None
    ) -> Page[PostItem]:
        """The caller's own profile posts."""
        return await post_service.profile_posts(caller, caller.user_id, cursor, limit)

    @get("/users/{user_id:str}/posts")
    async def profile_posts(
        self,
        user_id: str,
        post_service: PostService,
        caller: AccessClaims,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[PostItem]:
        """A user's profile posts the caller may see."""
        return await post_service.profile_posts(caller, parse_id(ids.Prefix.USER, user_id), cursor, limit)

    @get("/feed")
    async def home_feed(
        self, post_service: PostService, caller: AccessClaims, cursor: str | None = None, limit: int | None = None
    ) -> Page[FeedItem]:
        """The caller's home feed: clubs, friends, followed creators; newest first."""
        return await post_service.home_feed(caller, cursor, limit)

    @get("/posts/{post_id:str}")
    async def detail(self, post_id: str, post_service: PostService, caller: AccessClaims) -> PostItem:
        """One post."""
        return await post_service.get_post(caller, _post(post_id))

    @patch("/posts/{post_id:str}")
    async def update(self, post_id: str, data: PostUpdate, post_service: PostService, caller: AccessClaims) -> PostItem:
        """Edit one's own post."""
        return await post_service.update_post(caller, _post(post_id), data)

    @delete("/posts/{post_id:str}")
    async def remove(self, post_id: str, post_service: PostService, caller: AccessClaims) -> None:
        """Delete a post (author or club moderator)."""
        await post_service.delete_post(caller, _post(post_id))

    @post("/posts/{post_id:str}/pin", status_code=HTTP_200_OK)
    async def pin(self, post_id: str, post_service: PostService, caller: AccessClaims) -> PostItem:
        """Pin a post (club moderators; the author on a profile)."""
        return await post_service.set_pinned(caller, _post(post_id), pinned=True)

    @delete("/posts/{post_id:str}/pin", status_code=HTTP_200_OK)
    async def unpin(self, post_id: str, post_service: PostService, caller: AccessClaims) -> PostItem:
        """Unpin a post."""
        return await post_service.set_pinned(caller, _post(post_id), pinned=False)

    @post("/posts/{post_id:str}/comments", status_code=HTTP_201_CREATED)
    async def comment(
        self, post_id: str, data: CommentCreate, post_service: PostService, caller: AccessClaims
    ) -> CommentItem:
        """Comment on a post or reply to a comment."""
        return await post_service.add_comment(caller, _post(post_id), data)

    @get("/posts/{post_id:str}/comments")
    async def comments(
        self,
        post_id: str,
        post_service: PostService,
        caller: AccessClaims,
        parent_id: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[CommentItem]:
        """One level of a post's comment thread, oldest first."""
        return await post_service.list_comments(caller, _post(post_id), parent_id=parent_id, cursor=cursor, limit=limit)

    @patch("/comments/{comment_id:str}")
    async def update_comment(
        self, comment_id: str, data: CommentUpdate, post_service: PostService, caller: AccessClaims
    ) -> CommentItem:
        """Edit one's own comment."""
        return await post_service.update_comment(caller, _comment(comment_id), data)

    @delete("/comments/{comment_id:str}")
    async def remove_comment(self, comment_id: str, post_service: PostService, caller: AccessClaims) -> None:
        """Delete a comment, leaving a tombstone."""
        await post_service.delete_comment(caller, _comment(comment_id))

    @post("/posts/{post_id:str}/reactions", status_code=HTTP_200_OK)
    async def react(
        self, post_id: str, data: ReactionCreate, post_service: PostService, caller: AccessClaims
    ) -> ReactionSummary:
        """React to a post (idempotent)."""
        return await post_service.react_to_post(caller, _post(post_id), ReactionKind(data.kind), add=True)

    @delete("/posts/{post_id:str}/reactions/{kind:str}", status_code=HTTP_200_OK)
    async def unreact(
        self, post_id: str, kind: str, post_service: PostService, caller: AccessClaims
    ) -> ReactionSummary:
        """Take back a reaction (idempotent)."""
        return await post_service.react_to_post(caller, _post(post_id), parse_reaction_kind(kind), add=False)

    @post("/comments/{comment_id:str}/reactions", status_code=HTTP_200_OK)
    async def react_comment(
        self, comment_id: str, data: ReactionCreate, post_service: PostService, caller: AccessClaims
    ) -> ReactionSummary:
        """React to a comment (idempotent)."""
        return await post_service.react_to_comment(caller, _comment(comment_id), ReactionKind(data.kind), add=True)

    @delete("/comments/{comment_id:str}/reactions/{kind:str}", status_code=HTTP_200_OK)
    async def unreact_comment(
        self, comment_id: str, kind: str, post_service: PostService, caller: AccessClaims
    ) -> ReactionSummary:
        """Take back a reaction on a comment (idempotent)."""
        return await post_service.react_to_comment(caller, _comment(comment_id), parse_reaction_kind(kind), add=False)

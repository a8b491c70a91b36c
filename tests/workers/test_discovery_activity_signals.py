"""Activity signals (check-ins, posts, comments) queue a debounced recommendation refresh for the users concerned."""

from __future__ import annotations

import time
import uuid

from arq.connections import ArqRedis

from shared.bus import CommentCreated, EventCheckedIn, PostCreated
from tests.workers.conftest import MakeUser
from workers.enqueue import enqueue_for_event
from workers.jobs.discovery import DEBOUNCE_S, REFRESH_RECOMMENDATIONS, queue_due_refreshes


async def test_check_ins_posts_and_comments_queue_refreshes(
    make_user: MakeUser, arq_redis: ArqRedis, queue_name: str
) -> None:
    attendee, author, commenter = await make_user(), await make_user(), await make_user()
    post_id = uuid.uuid4()
    for event in (
        EventCheckedIn(event_id=uuid.uuid4(), rsvp_id=uuid.uuid4(), user_id=attendee.id),
        PostCreated(post_id=post_id, author_id=author.id, club_id=None),
        CommentCreated(
            comment_id=uuid.uuid4(),
            post_id=post_id,
            author_id=commenter.id,
            post_author_id=author.id,
            parent_id=None,
            club_id=None,
        ),
    ):
        await enqueue_for_event(arq_redis, event, cause=uuid.uuid4())
    await queue_due_refreshes(arq_redis, time.time() + DEBOUNCE_S + 1)
    queued = [j.decode() for j in await arq_redis.zrange(queue_name, 0, -1)]
    refreshed = {j.split(":")[1] for j in queued if j.startswith(f"{REFRESH_RECOMMENDATIONS.name}:")}
    # The commenter and the post's author both have a new engagement; the author's two signals collapse.
    assert {str(attendee.id), str(author.id), str(commenter.id)} <= refreshed

"""Recommendation quality benchmark on a synthetic community with hidden interest groups.

Generates users, clubs, events, friendships and RSVPs driven by hidden groups, holds out 20% of
each user's RSVPs (and of their friendships, for people), then ranks with the production scoring
code (``shared.domain.discovery.scoring``) and prints precision@10 / recall@10 next to a same-city
popularity baseline and a random baseline computed in the same run, plus the time a full refresh
(candidates + scoring for every user) takes.

Candidate generation mirrors ``engine.load_*_candidates`` over in-memory indexes instead of SQL,
so the numbers measure the scoring and candidate rules, not Postgres.

    uv run python -m loadtests.rec_quality [--users 5000 --clubs 500 --events 5000 --seed 7]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.domain.discovery import scoring

CITIES = [f"City{i}" for i in range(10)]
GROUPS = 25
INTERESTS = [f"interest{i}" for i in range(75)]
K = 10


@dataclass
class Community:
    """Everything the generator made, plus the held-out truth."""

    user_city: list[str]
    user_group: list[int]
    user_interests: list[frozenset[str]]
    club_city: list[str]
    club_tags: list[frozenset[str]]
    club_members: list[set[int]]
    user_clubs: list[set[int]]
    event_city: list[str]
    event_tags: list[frozenset[str]]
    event_club: list[int | None]
    event_start: list[datetime]
    event_published: list[datetime]
    train_rsvps: list[set[int]]
    held_rsvps: list[set[int]]
    train_friends: list[set[int]]
    held_friends: list[set[int]]
    uuids: list[uuid.UUID] = field(default_factory=list)


def generate(n_users: int, n_clubs: int, n_events: int, rng: random.Random, now: datetime) -> Community:
    """A community where taste comes from a hidden group, place from a city, and friends from both."""
    core = [rng.sample(INTERESTS, 3) for _ in range(GROUPS)]
    user_group = [rng.randrange(GROUPS) for _ in range(n_users)]
    user_city = [rng.choice(CITIES) for _ in range(n_users)]
    user_interests = [frozenset([*rng.sample(core[g], 2), rng.choice(INTERESTS)]) for g in user_group]
    club_group = [rng.randrange(GROUPS) for _ in range(n_clubs)]
    club_city = [rng.choice(CITIES) for _ in range(n_clubs)]
    club_tags = [frozenset(rng.sample(core[g], 2)) for g in club_group]
    by_group_city: dict[tuple[int, str], list[int]] = defaultdict(list)
    for c in range(n_clubs):
        by_group_city[(club_group[c], club_city[c])].append(c)
    club_members: list[set[int]] = [set() for _ in range(n_clubs)]
    user_clubs: list[set[int]] = [set() for _ in range(n_users)]
    for u in range(n_users):
        for _ in range(2):
            local = by_group_city.get((user_group[u], user_city[u]))
            c = rng.choice(local) if local and rng.random() < 0.8 else rng.randrange(n_clubs)
            club_members[c].add(u)
            user_clubs[u].add(c)
    event_group = [rng.randrange(GROUPS) for _ in range(n_events)]
    event_city = [rng.choice(CITIES) for _ in range(n_events)]
    event_tags = [frozenset(rng.sample(core[g], 2)) for g in event_group]
    event_club: list[int | None] = []
    for e in range(n_events):
        local = by_group_city.get((event_group[e], event_city[e]))
        event_club.append(rng.choice(local) if local and rng.random() < 0.6 else None)
    event_start = [now + timedelta(hours=rng.uniform(6, 24 * 60)) for _ in range(n_events)]
    event_published = [now - timedelta(days=rng.uniform(0, 20)) for _ in range(n_events)]
    appeal = [rng.lognormvariate(0, 0.6) for _ in range(n_events)]

    # Friendships: mostly within the same group and city.
    members_of: dict[tuple[int, str], list[int]] = defaultdict(list)
    for u in range(n_users):
        members_of[(user_group[u], user_city[u])].append(u)
    friends: list[set[int]] = [set() for _ in range(n_users)]
    for u in range(n_users):
        for _ in range(4):
            pool = members_of[(user_group[u], user_city[u])]
            v = rng.choice(pool) if rng.random() < 0.7 and len(pool) > 1 else rng.randrange(n_users)
            if v != u:
                friends[u].add(v)
                friends[v].add(u)

    # RSVPs: an event's pull is its appeal, times taste (group), place (city), club and friends going.
    events_by_city: dict[str, list[int]] = defaultdict(list)
    for e in range(n_events):
        events_by_city[event_city[e]].append(e)
    rsvps: list[set[int]] = [set() for _ in range(n_users)]
    order = list(range(n_users))
    for round_ in range(2):
        rng.shuffle(order)
        for u in order:
            local = events_by_city[user_city[u]]
            pool = rng.sample(local, min(len(local), 150)) + rng.sample(range(n_events), 30)
            going_friends = Counter(e for f in friends[u] for e in rsvps[f])
            weights = []
            for e in pool:
                w = appeal[e]
                w *= 8.0 if event_group[e] == user_group[u] else 1.0
                w *= 4.0 if event_city[e] == user_city[u] else 0.3
                w *= 2.0 if event_club[e] in user_clubs[u] else 1.0
                w *= 1.0 + 1.5 * going_friends.get(e, 0)
                weights.append(w)
            for e in rng.choices(pool, weights=weights, k=5 if round_ == 0 else 4):
                rsvps[u].add(e)

    train_rsvps, held_rsvps = _split(rsvps, rng)
    pairs = sorted({(min(u, v), max(u, v)) for u in range(n_users) for v in friends[u]})
    rng.shuffle(pairs)
    held_pairs = set(pairs[: len(pairs) // 5])
    train_friends: list[set[int]] = [set() for _ in range(n_users)]
    held_friends: list[set[int]] = [set() for _ in range(n_users)]
    for a, b in pairs:
        target = held_friends if (a, b) in held_pairs else train_friends
        target[a].add(b)
        target[b].add(a)
    return Community(
        user_city=user_city,
        user_group=user_group,
        user_interests=user_interests,
        club_city=club_city,
        club_tags=club_tags,
        club_members=club_members,
        user_clubs=user_clubs,
        event_city=event_city,
        event_tags=event_tags,
        event_club=event_club,
        event_start=event_start,
        event_published=event_published,
        train_rsvps=train_rsvps,
        held_rsvps=held_rsvps,
        train_friends=train_friends,
        held_friends=held_friends,
        uuids=[uuid.UUID(int=i + 1) for i in range(max(n_users, n_events, n_clubs))],
    )


def _split(rsvps: list[set[int]], rng: random.Random) -> tuple[list[set[int]], list[set[int]]]:
    """20% of each user's RSVPs held out (at least one when they have two or more)."""
    train, held = [], []
    for items in rsvps:
        ordered = sorted(items)
        rng.shuffle(ordered)
        n = max(1, round(len(ordered) * 0.2)) if len(ordered) >= 2 else 0
        held.append(set(ordered[:n]))
        train.append(set(ordered[n:]))
    return train, held


class Indexes:
    """Lookups the SQL of the engine would do, built once from the training signals."""

    def __init__(self, c: Community) -> None:
        self.attendees: Counter[int] = Counter(e for s in c.train_rsvps for e in s)
        self.event_goers: dict[int, set[int]] = defaultdict(set)
        for u, s in enumerate(c.train_rsvps):
            for e in s:
                self.event_goers[e].add(u)
        self.events_by_city: dict[str, list[int]] = defaultdict(list)
        self.events_by_tag: dict[str, list[int]] = defaultdict(list)
        self.events_by_club: dict[int, list[int]] = defaultdict(list)
        for e, city in enumerate(c.event_city):
            self.events_by_city[city].append(e)
            for t in c.event_tags[e]:
                self.events_by_tag[t].append(e)
            club = c.event_club[e]
            if club is not None:
                self.events_by_club[club].append(e)
        self.users_by_city: dict[str, list[int]] = defaultdict(list)
        for u, city in enumerate(c.user_city):
            self.users_by_city[city].append(u)
        self.degree = [len(f) for f in c.train_friends]


def viewer_of(c: Community, u: int) -> scoring.Viewer:
    """The scoring view of user ``u`` (home from the training RSVPs is not modelled: no coordinates)."""
    return scoring.Viewer(
        user_id=c.uuids[u],
        city=c.user_city[u],
        interests=c.user_interests[u],
        premium_tier=None,
        clubs={c.uuids[k]: f"Club {k}" for k in c.user_clubs[u]},
    )


def _club_uuid(c: Community, e: int) -> uuid.UUID | None:
    club = c.event_club[e]
    return None if club is None else c.uuids[club]


def recommend_events(c: Community, ix: Indexes, u: int, now: datetime, cap: int = 600) -> list[int]:
    """Engine rules: city, clubs, friends' RSVPs and interests as sources; capped; scored; top K."""
    friends_going: Counter[int] = Counter(e for f in c.train_friends[u] for e in c.train_rsvps[f])
    cands = set(ix.events_by_city[c.user_city[u]]) | set(friends_going)
    for k in c.user_clubs[u]:
        cands.update(ix.events_by_club[k])
    for t in c.user_interests[u]:
        cands.update(ix.events_by_tag[t])
    cands -= c.train_rsvps[u]
    ranked = sorted(cands, key=lambda e: (-friends_going.get(e, 0), -ix.attendees.get(e, 0), c.event_start[e]))[:cap]
    viewer = viewer_of(c, u)
    scored = [
        scoring.score_event(
            viewer,
            scoring.EventCandidate(
                id=c.uuids[e],
                title="",
                start_time=c.event_start[e],
                city=c.event_city[e],
                latitude=0.0,
                longitude=0.0,
                tags=c.event_tags[e],
                club_id=_club_uuid(c, e),
                club_name=None,
                attendee_count=ix.attendees.get(e, 0),
                published_at=c.event_published[e],
                friends_attending=friends_going.get(e, 0),
            ),
            now,
        )
        for e in ranked
    ]
    return [s.target_id.int - 1 for s in scoring.top(scored, K)]


def recommend_people(c: Community, ix: Indexes, u: int, now: datetime, cap: int = 600) -> list[int]:
    """Engine rules: friends of friends, club co-members, co-attendees, same city or interests; scored; top K."""
    excluded = c.train_friends[u] | {u}
    fof: Counter[int] = Counter(v for f in c.train_friends[u] for v in c.train_friends[f] if v not in excluded)
    shared: dict[int, list[int]] = defaultdict(list)
    for k in c.user_clubs[u]:
        for v in c.club_members[k]:
            if v not in excluded:
                shared[v].append(k)
    co: Counter[int] = Counter(v for e in c.train_rsvps[u] for v in ix.event_goers[e] if v not in excluded)
    near = [v for v in ix.users_by_city[c.user_city[u]] if v not in excluded][:cap]
    cands = set(fof) | set(shared) | set(dict(co.most_common(cap))) | set(near)
    viewer = viewer_of(c, u)
    scored = [
        scoring.score_person(
            viewer,
            scoring.PersonCandidate(
                id=c.uuids[v],
                display_name="",
                city=c.user_city[v],
                interests=c.user_interests[v],
                shared_clubs=[(c.uuids[k], f"Club {k}") for k in shared.get(v, [])],
                mutual_friends=fof.get(v, 0),
                co_attended=co.get(v, 0),
                vouched=False,
                last_active_at=now,
            ),
            now,
            {},
            "",
        )
        for v in cands
    ]
    return [s.target_id.int - 1 for s in scoring.top(scored, K)]


def popular_events(c: Community, ix: Indexes, u: int) -> list[int]:
    """Baseline: the most-attended upcoming events of the user's city they have not RSVP'd to."""
    pool = [e for e in ix.events_by_city[c.user_city[u]] if e not in c.train_rsvps[u]]
    return sorted(pool, key=lambda e: (-ix.attendees.get(e, 0), e))[:K]


def popular_people(c: Community, ix: Indexes, u: int) -> list[int]:
    """Baseline: the best-connected people of the user's city who are not yet friends."""
    excluded = c.train_friends[u] | {u}
    pool = [v for v in ix.users_by_city[c.user_city[u]] if v not in excluded]
    return sorted(pool, key=lambda v: (-ix.degree[v], v))[:K]


def pr(recommended: list[int], truth: set[int]) -> tuple[float, float]:
    """precision@K and recall@K of one list."""
    hits = len(set(recommended) & truth)
    return hits / K, hits / len(truth)


def main() -> None:
    """Generate, rank, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--clubs", type=int, default=500)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--eval-users", type=int, default=1000, help="users sampled for precision/recall")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    t0 = time.perf_counter()
    c = generate(args.users, args.clubs, args.events, rng, now)
    ix = Indexes(c)
    print(
        f"community: {args.users} users, {args.clubs} clubs, {args.events} events, "
        f"{sum(map(len, c.train_rsvps)) + sum(map(len, c.held_rsvps))} RSVPs (20% held out), "
        f"{sum(map(len, c.train_friends)) // 2 + sum(map(len, c.held_friends)) // 2} friendships (20% held out); "
        f"generated in {time.perf_counter() - t0:.1f} s"
    )
    sample = rng.sample(range(args.users), min(args.eval_users, args.users))
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for u in sample:
        if c.held_rsvps[u]:
            rows["events: ours"].append(pr(recommend_events(c, ix, u, now), c.held_rsvps[u]))
            rows["events: popular in city"].append(pr(popular_events(c, ix, u), c.held_rsvps[u]))
            unseen = [e for e in range(args.events) if e not in c.train_rsvps[u]]
            rows["events: random"].append(pr(rng.sample(unseen, K), c.held_rsvps[u]))
        if c.held_friends[u]:
            rows["people: ours"].append(pr(recommend_people(c, ix, u, now), c.held_friends[u]))
            rows["people: popular in city"].append(pr(popular_people(c, ix, u), c.held_friends[u]))
            others = [v for v in range(args.users) if v != u and v not in c.train_friends[u]]
            rows["people: random"].append(pr(rng.sample(others, K), c.held_friends[u]))
    print(f"\n{'ranker':<26}{'users':>7}{'precision@10':>14}{'recall@10':>11}")
    for name, values in rows.items():
        p = sum(v[0] for v in values) / len(values)
        r = sum(v[1] for v in values) / len(values)
        print(f"{name:<26}{len(values):>7}{p:>14.4f}{r:>11.4f}")
    for kind in ("events", "people"):
        ours = sum(v[0] for v in rows[f"{kind}: ours"]) / len(rows[f"{kind}: ours"])
        base = sum(v[0] for v in rows[f"{kind}: popular in city"]) / len(rows[f"{kind}: popular in city"])
        print(f"{kind}: precision@10 is {ours / base:.2f}x the popularity baseline (target >= 2x)")
    t1 = time.perf_counter()
    for u in range(args.users):
        recommend_events(c, ix, u, now)
        recommend_people(c, ix, u, now)
    elapsed = time.perf_counter() - t1
    print(
        f"\nfull refresh (candidates + scoring, events and people, all {args.users} users, in memory): "
        f"{elapsed:.1f} s = {elapsed / args.users * 1000:.1f} ms per user"
    )


if __name__ == "__main__":
    main()

"""Screening message text against the platform's and a club's blocklist terms.

Every message is screened, so the terms are cached per scope (the platform's list, and each
club's) in process, compiled once. A trigger on ``blocklist_terms`` sends ``NOTIFY
blocklist_changed`` with the club's UUID (empty for the platform's list) and the process's
:class:`~shared.db.listen.NotifyListener` drops that scope at once; a TTL bounds an entry's life
anyway, and while the listener is down the cache is off and every screen asks Postgres.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.db.fastread import Statements
from shared.domain.moderation.models import BlocklistMode

BLOCKLIST_CHANNEL = "blocklist_changed"
# Chats whose club is remembered; past it the memory starts over (a chat's club never changes).
MAX_CACHED_CHATS = 100_000

_TERMS_SQL = "SELECT club_id, term, mode FROM blocklist_terms WHERE club_id IS NULL OR club_id = $1::uuid ORDER BY term"
_CLUB_SQL = "SELECT club_id FROM chats WHERE id = $1"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The strongest match: ``reject`` beats ``flag``; ``term`` is the one that decided."""

    mode: BlocklistMode
    term: str


def normalize_term(term: str) -> str:
    """How terms are stored and compared: trimmed, inner whitespace collapsed, case-folded."""
    return " ".join(term.split()).lower()


def _pattern(term: str) -> re.Pattern[str]:
    # Whole words only, so a term does not hit inside a longer innocent word.
    return re.compile(r"(?<!\w)" + re.escape(term).replace(r"\ ", r"\s+") + r"(?!\w)")


class Terms:
    """One scope's terms, compiled once."""

    __slots__ = ("_flags", "_rejects")

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        """``rows`` are ``(term, mode)`` pairs."""
        self._rejects: list[tuple[str, re.Pattern[str]]] = []
        self._flags: list[tuple[str, re.Pattern[str]]] = []
        for term, mode in rows:
            (self._rejects if mode == BlocklistMode.REJECT else self._flags).append((term, _pattern(term)))

    def __bool__(self) -> bool:
        return bool(self._rejects or self._flags)

    def reject(self, folded: str) -> str | None:
        """The first refusing term in ``folded`` (case-folded text)."""
        return next((term for term, pattern in self._rejects if pattern.search(folded)), None)

    def flag(self, folded: str) -> str | None:
        """The first flagging term in ``folded``."""
        return next((term for term, pattern in self._flags if pattern.search(folded)), None)


def verdict_of(text: str, scopes: Iterable[Terms]) -> Verdict | None:
    """The verdict of the given scopes' terms on ``text``: any refusing term wins over every flagging one."""
    scopes = [s for s in scopes if s]
    if not scopes or not text.strip():
        return None
    folded = text.lower()
    for terms in scopes:
        if (term := terms.reject(folded)) is not None:
            return Verdict(BlocklistMode.REJECT, term)
    for terms in scopes:
        if (term := terms.flag(folded)) is not None:
            return Verdict(BlocklistMode.FLAG, term)
    return None


class BlocklistCache:
    """Compiled terms per scope (``None`` is the platform's list), forgotten when ``blocklist_changed`` names it.

    Like the access cache, ``put`` takes the generation read before the query, so a result read
    across a change is not cached.
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        """An inactive cache; a :class:`~shared.db.listen.NotifyListener` turns it on while it is listening."""
        self.ttl = ttl_seconds
        self.active = False
        self.generation = 0
        self._clock = clock
        self._scopes: dict[uuid.UUID | None, tuple[Terms, float]] = {}

    def get(self, scope: uuid.UUID | None) -> Terms | None:
        """The fresh cached terms of ``scope``."""
        entry = self._scopes.get(scope)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._scopes[scope]
            return None
        return entry[0]

    def put(self, scopes: dict[uuid.UUID | None, Terms], generation: int) -> None:
        """Cache ``scopes`` unless the cache is off or a scope changed since ``generation`` was read."""
        if not self.active or generation != self.generation or self.ttl <= 0:
            return
        expires = self._clock() + self.ttl
        for scope, terms in scopes.items():
            self._scopes[scope] = (terms, expires)

    def listening(self, up: bool) -> None:
        """Cache only while ``LISTEN blocklist_changed`` is up; start from empty either way."""
        self.generation += 1
        self._scopes.clear()
        self.active = up

    def forget(self, scope: uuid.UUID | None) -> None:
        """Drop ``scope``'s terms and refuse results read before now."""
        self.generation += 1
        self._scopes.pop(scope, None)

    def notified(self, payload: str) -> None:
        """``NOTIFY blocklist_changed, '<club uuid>'`` (empty for the platform's list): forget that scope."""
        try:
            self.forget(uuid.UUID(payload) if payload else None)
        except ValueError:
            # Unknown payloads are not ours to interpret: forget everything rather than guess.
            self.generation += 1
            self._scopes.clear()


class Blocklist:
    """Screens text posted in a chat against the platform's terms and, in a club's room, the club's."""

    def __init__(self, statements: Statements, cache: BlocklistCache | None = None) -> None:
        """``statements`` runs the look-ups; without an active ``cache`` every screen reads the terms."""
        self._statements = statements
        self._cache = cache if cache is not None else BlocklistCache(0)
        # A chat's club never changes (only club rooms have one), so this needs no invalidation.
        self._club_of: dict[uuid.UUID, uuid.UUID | None] = {}

    async def screen(self, chat_id: uuid.UUID, text: str) -> Verdict | None:
        """The blocklist verdict on ``text`` posted in ``chat_id``: global terms plus the club's, if a club room."""
        if not text.strip():
            return None
        club = await self._club(chat_id)
        cache = self._cache
        platform, own = cache.get(None), cache.get(club) if club is not None else None
        if platform is None or (club is not None and own is None):
            generation = cache.generation
            rows = await self._statements.fetch(_TERMS_SQL, club)
            platform = Terms((r["term"], r["mode"]) for r in rows if r["club_id"] is None)
            scopes: dict[uuid.UUID | None, Terms] = {None: platform}
            if club is not None:
                own = scopes[club] = Terms((r["term"], r["mode"]) for r in rows if r["club_id"] is not None)
            cache.put(scopes, generation)
        return verdict_of(text, (platform, own) if own is not None else (platform,))

    def forget(self, scope: uuid.UUID | None) -> None:
        """A list of this process changed ``scope`` (a club, ``None`` for the platform's): drop it now."""
        self._cache.forget(scope)

    async def _club(self, chat_id: uuid.UUID) -> uuid.UUID | None:
        if chat_id in self._club_of:
            return self._club_of[chat_id]
        row = await self._statements.fetchrow(_CLUB_SQL, chat_id)
        if row is None:
            # No such chat: the send refuses it; nothing to remember.
            return None
        if len(self._club_of) >= MAX_CACHED_CHATS:
            self._club_of.clear()
        club: uuid.UUID | None = row["club_id"]
        self._club_of[chat_id] = club
        return club

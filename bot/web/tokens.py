"""Signed, short-lived, single-use links to a learner's browser terminal.

A link token is ``base64url(claims JSON) "." base64url(HMAC-SHA256)`` under the bot's
``KEPLER_WEB_SECRET``. The claims bind it to one learner and one sandbox *generation* (the host
namespace: a reset makes a new one, so old links die with the old sandbox), carry a random
nonce, and an expiry ten minutes after issue. Opening a link spends its nonce; a second
opening (a replay, or a link copied out of someone's history) is refused. Spent nonces are kept
by a :class:`SpentLinks` until they expire: ``kepler serve`` hands the bot's store
(``SQLiteStore.spend_link``), so a restart inside the ten minutes does not reopen a spent link.
Only a SHA-256 digest of the nonce is kept, never the token: the digest opens nothing.

Nothing here knows of HTTP or Kubernetes: :mod:`bot.web.server` turns a rejection into a 403
page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

LINK_TTL = 600.0  # a link must be opened within ten minutes
_DOMAIN = b"kepler-station/terminal-link/v1\x00"  # the key signs nothing else

Reason = Literal["forged", "expired", "used", "malformed"]


class LinkRejected(Exception):
    """Why a link does not open a terminal (shown to the learner as a 403 page)."""

    def __init__(self, reason: Reason):
        super().__init__(reason)
        self.reason: Reason = reason


@dataclass(frozen=True)
class LinkClaims:
    learner: str
    generation: str
    nonce: str
    expires: float

    @property
    def digest(self) -> str:
        """What is remembered of a spent link: a hash of its nonce (it cannot rebuild the token)."""
        return hashlib.sha256(_DOMAIN + self.nonce.encode()).hexdigest()


class SpentLinks(Protocol):
    """Where spent links are remembered (the bot's store: ``bot.store.sqlite``)."""

    async def spend_link(self, digest: str, expires: float, now: float) -> bool:
        """Spend ``digest`` until ``expires``; False when it was spent already."""
        ...


class MemorySpentLinks:
    """Spent links in this process only (forgotten on restart): for bots without a store."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}  # digest -> expiry

    async def spend_link(self, digest: str, expires: float, now: float) -> bool:
        self._spent = {d: e for d, e in self._spent.items() if e > now}
        if digest in self._spent:
            return False
        self._spent[digest] = expires
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Issues and verifies link tokens; ``spent`` remembers opened ones until they expire."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        ttl: float = LINK_TTL,
        clock: Callable[[], float] = time.time,
        spent: SpentLinks | None = None,
    ):
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("the terminal link secret must be at least 16 bytes")
        self._key = hashlib.sha256(_DOMAIN + key).digest()
        self.ttl = ttl
        self.clock = clock
        self.spent: SpentLinks = spent if spent is not None else MemorySpentLinks()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def issue(self, learner: str, generation: str) -> str:
        claims = {"l": learner, "g": generation, "n": secrets.token_urlsafe(16),
                  "e": round(self.clock() + self.ttl, 3)}  # fmt: skip
        body = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, token: str) -> LinkClaims:
        """The claims of a genuine, unexpired token (does not spend it)."""
        try:
            body_text, mac_text = token.split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError):
            raise LinkRejected("malformed") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise LinkRejected("forged")
        try:
            raw = json.loads(body)
            claims = LinkClaims(str(raw["l"]), str(raw["g"]), str(raw["n"]), float(raw["e"]))
        except (ValueError, KeyError, TypeError):
            raise LinkRejected("malformed") from None
        if self.clock() >= claims.expires:
            raise LinkRejected("expired")
        return claims

    async def redeem(self, token: str) -> LinkClaims:
        """Verify and spend: the first call succeeds, every later one is a replay."""
        claims = self.verify(token)
        if not await self.spent.spend_link(claims.digest, claims.expires, self.clock()):
            raise LinkRejected("used")
        return claims

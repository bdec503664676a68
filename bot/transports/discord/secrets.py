"""Secrets at rest (webhook tokens): Fernet with ``KEPLER_SECRET_KEY``, or not stored at all."""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)


class SecretBox:
    """``seal`` returns None without a key: the caller then keeps the secret in memory only."""

    def __init__(self, key: str | None):
        self._fernet: Fernet | None = None
        if key:
            try:
                self._fernet = Fernet(key.encode())
            except ValueError:
                log.error("KEPLER_SECRET_KEY is not a Fernet key; secrets will not be stored")

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str | None:
        return self._fernet.encrypt(secret.encode()).decode() if self._fernet else None

    def open(self, sealed: str | None) -> str | None:
        if not sealed or self._fernet is None:
            return None
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None

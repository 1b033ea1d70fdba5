"""Encryption at rest for CRM credentials (Fernet, from the cryptography package)."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from syncapp.exceptions import CredentialsDecryptionError


def _fernet_key(secret: str) -> bytes:
    # Accept any passphrase, not only a 32-byte urlsafe key, by deriving one from it.
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


def encryption_secrets() -> list[str]:
    """Return the SYNC_ENCRYPTION_KEY secrets, current first (the suppression hashes are keyed by them too)."""
    # A comma-separated list rotates keys: the first encrypts, all of them decrypt.
    secrets = [part.strip() for part in settings.SYNC_ENCRYPTION_KEY.split(",") if part.strip()]
    if not secrets:
        if getattr(settings, "IS_PRODUCTION", False):
            raise ImproperlyConfigured("SYNC_ENCRYPTION_KEY is required to store CRM credentials.")
        # Development only: tie the key to SECRET_KEY so a fresh checkout works.
        secrets = ["dev:" + settings.SECRET_KEY]
    return secrets


def _cipher() -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in encryption_secrets()])


def encrypt_json(data: dict) -> str:
    return _cipher().encrypt(json.dumps(data).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_cipher().decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsDecryptionError(
            "Stored CRM credentials cannot be decrypted: SYNC_ENCRYPTION_KEY changed without keeping the old key."
        ) from None

"""The App's key pair, App JWT checks and installation tokens, with GitHub's rules and messages."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# GitHub tolerates some clock drift between the App and itself.
CLOCK_SKEW = 60
# "exp: no more than 10 minutes into the future" (GitHub's docs). GitHub recommends back-dating
# iat by 60 s, so a conforming token may span 660 s from iat to exp.
MAX_LIFETIME = 600
TOKEN_LIFETIME = 3600

DOC_JWT = "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app"


def generate_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # what GitHub hands out ("BEGIN RSA PRIVATE KEY")
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(private_pem: str) -> bytes:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class JWTRejected(Exception):
    """The App JWT is not acceptable; `str()` is GitHub's message."""


def unverified_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, read before it is verified: it says which App's key must verify it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return str(claims["iss"]) if isinstance(claims, dict) and "iss" in claims else None


def verify_app_jwt(token: str, public_pem: bytes, app_id: int, *, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(
            token,
            public_pem,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_iss": False, "require": ["iat", "exp", "iss"]},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise JWTRejected(f"Missing '{exc.claim}' claim in JWT") from exc
    except jwt.PyJWTError as exc:
        raise JWTRejected("A JSON web token could not be decoded") from exc
    iat, exp, iss = claims["iat"], claims["exp"], claims["iss"]
    if not isinstance(iat, (int, float)) or iat > now + CLOCK_SKEW:
        raise JWTRejected("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.")
    if not isinstance(exp, (int, float)) or exp <= now - CLOCK_SKEW:
        raise JWTRejected(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires."
        )
    if exp > now + MAX_LIFETIME + CLOCK_SKEW or exp - iat > MAX_LIFETIME + CLOCK_SKEW:
        raise JWTRejected("'Expiration time' claim ('exp') is too far in the future.")
    if str(iss) != str(app_id):
        raise JWTRejected("'Issuer' claim ('iss') must be an Integer representing the App ID.")
    return claims


@dataclass
class InstallationToken:
    token: str
    installation_id: int
    expires_at: float
    permissions: dict[str, str]
    repositories: list[str] | None = None  # full names; None: every repo of the installation
    revoked: bool = False

    def valid(self, now: float | None = None) -> bool:
        return not self.revoked and (time.time() if now is None else now) < self.expires_at

    def covers(self, full_name: str) -> bool:
        return self.repositories is None or full_name.lower() in (r.lower() for r in self.repositories)


@dataclass
class TokenStore:
    tokens: dict[str, InstallationToken] = field(default_factory=dict)

    def issue(self, installation_id: int, permissions: dict[str, str], repositories: list[str] | None) -> InstallationToken:
        token = InstallationToken(
            token="ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36],
            installation_id=installation_id,
            expires_at=time.time() + TOKEN_LIFETIME,
            permissions=permissions,
            repositories=repositories,
        )
        self.tokens[token.token] = token
        return token

    def lookup(self, token: str) -> InstallationToken | None:
        found = self.tokens.get(token)
        return found if found and found.valid() else None

    def expire_all(self) -> None:
        for token in self.tokens.values():
            token.revoked = True

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.github.auth import AppAuth, InstallationToken, InstallationTokens
from app.github.retry import retry_delay


@pytest.fixture(scope="module")
def keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode(), key.public_key()


def test_retry_after_is_honoured_for_secondary_limits():
    assert retry_delay(403, {"Retry-After": "7"}, 1, now=0) == 7
    assert retry_delay(429, {"retry-after": "2"}, 3, now=0) == 2


def test_primary_limit_waits_until_reset():
    assert retry_delay(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1010"}, 1, now=1000) == 11


def test_plain_403_and_4xx_are_final_and_5xx_backs_off():
    assert retry_delay(403, {}, 1, now=0) is None
    assert retry_delay(404, {}, 1, now=0) is None
    assert retry_delay(422, {}, 1, now=0) is None
    assert 0 < retry_delay(502, {}, 1, now=0) <= 0.5
    assert 2 <= retry_delay(502, {}, 4, now=0) <= 4


def test_app_jwt_is_rs256_backdated_short_and_reused(keypair):
    pem, public = keypair
    now = [1_000_000.0]
    auth = AppAuth(42, pem, clock=lambda: now[0])
    token = auth.jwt()
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims["iss"] == "42"
    assert claims["iat"] == 1_000_000 - 60
    assert claims["exp"] - claims["iat"] <= 600
    now[0] += 300
    assert auth.jwt() == token  # still comfortably valid
    now[0] += 200
    assert auth.jwt() != token  # within a minute of expiry: a fresh one


async def test_installation_tokens_are_cached_until_shortly_before_expiry(keypair):
    pem, _ = keypair
    now = [1_000_000.0]
    issued = []

    async def fetch(installation_id, app_jwt, scope=None):
        issued.append(installation_id)
        return InstallationToken(f"tok-{len(issued)}", now[0] + 3600)

    tokens = InstallationTokens(AppAuth(1, pem, clock=lambda: now[0]), fetch, clock=lambda: now[0])
    assert await tokens.get(7) == "tok-1"
    now[0] += 3000
    assert await tokens.get(7) == "tok-1"
    now[0] += 400  # less than 5 minutes left
    assert await tokens.get(7) == "tok-2"
    tokens.invalidate(7, "tok-1")  # a stale invalidation keeps the fresher token
    assert await tokens.get(7) == "tok-2"
    tokens.invalidate(7, "tok-2")
    assert await tokens.get(7) == "tok-3"

"""Call tokens (services/gateway/edge/call_tokens.py) and production mode's required secrets."""

from __future__ import annotations

import pytest

from services.gateway.edge.call_tokens import CallTokens, TokenError
from services.gateway.edge.production import production_problems
from shared.settings import GatewaySettings

SID = "CA" + "0" * 32


def test_a_token_carries_its_claims_and_starts_one_call_once() -> None:
    tokens = CallTokens(b"k" * 32, 60)
    token = tokens.mint("twilio", call_id=SID, agent_id="desk", from_number="+34910000000", to_number="+34910000001")
    claims = tokens.check(token, "twilio", call_id=SID)
    assert (claims.agent_id, claims.from_number, claims.to_number) == ("desk", "+34910000000", "+34910000001")
    with pytest.raises(TokenError) as err:
        tokens.check(token, "twilio", call_id=SID)
    assert err.value.code == "replayed"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad_signature"),
        (lambda t: t.replace("v1.", "v2.", 1), "malformed"),
        (lambda t: "", "missing"),
        (lambda t: "v1." + "x" * 3000, "malformed"),
        (lambda t: t.split(".")[0] + ".e30." + t.split(".")[2], "bad_signature"),  # claims swapped, old mac
    ],
)
def test_tampered_tokens_are_refused(mutate, code) -> None:
    tokens = CallTokens(b"k" * 32, 60)
    with pytest.raises(TokenError) as err:
        tokens.check(mutate(tokens.mint("twilio", call_id=SID)), "twilio", call_id=SID)
    assert err.value.code == code


def test_expired_wrong_kind_wrong_call_and_foreign_secret_are_refused() -> None:
    tokens = CallTokens(b"k" * 32, 60)
    with pytest.raises(TokenError, match="expired"):
        tokens.check(tokens.mint("twilio", call_id=SID, now=0), "twilio", call_id=SID)
    with pytest.raises(TokenError) as err:
        tokens.check(tokens.mint("browser"), "twilio", call_id=SID)
    assert err.value.code == "wrong_kind"
    with pytest.raises(TokenError) as err:
        tokens.check(tokens.mint("twilio", call_id="CA" + "1" * 32), "twilio", call_id=SID)
    assert err.value.code == "wrong_call"
    with pytest.raises(TokenError) as err:
        tokens.check(CallTokens(b"other" * 8, 60).mint("twilio", call_id=SID), "twilio", call_id=SID)
    assert err.value.code == "bad_signature"


def test_spent_nonces_are_forgotten_once_their_tokens_expired() -> None:
    tokens = CallTokens(b"k" * 32, 10)
    for i in range(100):
        tokens.check(tokens.mint("browser", now=1000.0 + i), "browser", now=1000.0 + i)
    assert len(tokens._spent) <= 11  # only those still unexpired are remembered


def test_production_mode_names_every_missing_secret() -> None:
    dev = GatewaySettings(_env_file=None, app_env="development")
    assert production_problems(dev) == []
    prod = GatewaySettings(_env_file=None, app_env="production", telephony_providers="twilio,telnyx")
    problems = " ".join(production_problems(prod))
    for name in (
        "API_KEYS",
        "ADMIN_API_KEY",
        "STREAM_TOKEN_SECRET",
        "PUBLIC_HOST",
        "WEBHOOK_SIGNING_SECRET",
        "TWILIO_AUTH_TOKEN",
        "TELNYX_PUBLIC_KEY",
    ):
        assert name in problems
    ready = GatewaySettings(
        _env_file=None,
        app_env="production",
        telephony_providers="twilio",
        api_keys="k",
        admin_api_key="a",
        stream_token_secret="s" * 32,
        public_host="victoria.example",
        twilio_auth_token="t",
        webhook_signing_secret="w" * 32,
    )
    assert production_problems(ready) == []
    short = ready.model_copy(
        update={"stream_token_secret": GatewaySettings(stream_token_secret="short").stream_token_secret}
    )
    assert any("shorter than 32" in p for p in production_problems(short))
    assert production_problems(GatewaySettings(_env_file=None, telephony_providers="twilio,sip")) != []


def test_safe_defaults_listen_on_loopback_only() -> None:
    settings = GatewaySettings(_env_file=None)
    assert settings.gateway_host == "127.0.0.1" and settings.metrics_host == "127.0.0.1"
    assert settings.app_env == "development"


def test_check_env_reports_what_production_mode_needs(monkeypatch, capsys) -> None:
    from tools import check_env

    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("TELEPHONY_PROVIDERS", "telnyx")
    for name in ("API_KEYS", "ADMIN_API_KEY", "STREAM_TOKEN_SECRET", "PUBLIC_HOST", "TELNYX_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert check_env.main(["--no-db"]) == 1
    out = capsys.readouterr().out
    assert "gateway: STREAM_TOKEN_SECRET is not set" in out and "TELNYX_PUBLIC_KEY" in out
    assert "TWILIO_AUTH_TOKEN" not in out

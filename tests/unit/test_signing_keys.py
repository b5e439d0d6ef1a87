"""Per-receiver signing keys and a verifier that never raises: ``key_for(master, url)`` is the only key a
receiver holds (from ``python -m tools.signing_key`` or ``GET /admin/signing-key``), so a key leaked by one
receiver forges nothing for another; ``verify`` answers False to any malformed header."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.gateway.api.admin import router as admin_router
from shared.settings import GatewaySettings
from shared.signing import DEVELOPMENT_SECRET, key_for, normalized_url, sign, verify
from tools import signing_key

MASTER = "master-secret"


def test_the_key_is_the_documented_hmac_of_the_normalized_url() -> None:
    expected = hmac.new(b"master-secret", b"victoria-signing-v1|https://crm.example.com/hook", hashlib.sha256)
    assert key_for(MASTER, "https://crm.example.com/hook") == expected.hexdigest()


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("HTTPS://CRM.Example.com/Hook?token=1#frag", "https://crm.example.com/Hook"),  # the path keeps its case
        ("https://crm.example.com:443/hook", "https://crm.example.com/hook"),  # the default port is no port
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://user:pass@[::1]:81/a b", "http://[::1]:81/a%20b"),
        ("https://bücher.de/ä", "https://xn--bcher-kva.de/%C3%A4"),  # as pydantic's HttpUrl writes it
    ],
)
def test_urls_are_normalized_as_the_tools_store_them(url: str, normalized: str) -> None:
    assert normalized_url(url) == normalized
    assert key_for(MASTER, url) == key_for(MASTER, normalized)


@pytest.mark.parametrize("url", ["ftp://x.example/a", "file:///etc/passwd", "crm.example.com/hook", "https://", ""])
def test_only_http_urls_have_keys(url: str) -> None:
    with pytest.raises(ValueError):
        key_for(MASTER, url)


def test_one_receivers_key_verifies_nothing_sent_to_another() -> None:
    crm, shop = "https://crm.example.com/hook", "https://shop.example.com/hook"
    assert len({key_for(MASTER, crm), key_for(MASTER, shop), key_for("other", crm), MASTER}) == 4
    body = b'{"event": "call.completed"}'
    header = sign(key_for(MASTER, crm), body, now=1_000)
    assert verify(key_for(MASTER, crm), body, header, now=1_000)
    assert not verify(key_for(MASTER, shop), body, header, now=1_000)
    assert not verify(MASTER, body, header, now=1_000)  # nor is the master what signs


@pytest.mark.parametrize(
    "header",
    [
        "t=1000,v1=é" + "0" * 63,  # non-ASCII: compare_digest would raise on str
        "t=1000",
        "v1=abc",
        "t=,v1=abc",
        "t=abc,v1=abc",
        "t=1e3,v1=abc",
        "t=1" + "0" * 400 + ",v1=abc",  # an int too large for a float
        "t=1" + "0" * 5000 + ",v1=abc",  # more digits than int() takes
        "garbage",
        "",
        ",,,",
        "t=1000,v1=\x00",
    ],
)
def test_verify_never_raises_on_a_malformed_header(header: str) -> None:
    assert verify("k", b"{}", header, now=1_000) is False


def test_verify_never_raises_on_wrong_types() -> None:
    good = sign("k", b"{}", now=1_000)
    assert verify("k", b"{}", good, now=1_000)
    assert verify("k", b"{}", None, now=1_000) is False  # type: ignore[arg-type]  # a header that was absent
    assert verify("k", "{}", good, now=1_000) is False  # type: ignore[arg-type]
    assert verify("k", b"{}", good.encode(), now=1_000) is False  # type: ignore[arg-type]


# --- python -m tools.signing_key -----------------------------------------------------------------------------


def test_the_cli_prints_the_receivers_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", MASTER)
    assert signing_key.main(["https://CRM.example.com/hook?x=1"]) == 0
    assert capsys.readouterr().out.strip() == key_for(MASTER, "https://crm.example.com/hook")


def test_the_cli_reads_the_dotenv_and_refuses_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WEBHOOK_SIGNING_SECRET", raising=False)
    assert signing_key.main(["https://crm.example.com/hook"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "WEBHOOK_SIGNING_SECRET is not set" in out.err
    assert signing_key.main(["--development", "https://crm.example.com/hook"]) == 0
    assert capsys.readouterr().out.strip() == key_for(DEVELOPMENT_SECRET, "https://crm.example.com/hook")
    (tmp_path / ".env").write_text(f"WEBHOOK_SIGNING_SECRET={MASTER}\n")
    assert signing_key.main(["https://crm.example.com/hook"]) == 0
    assert capsys.readouterr().out.strip() == key_for(MASTER, "https://crm.example.com/hook")
    assert signing_key.main(["ftp://crm.example.com/hook"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


# --- GET /admin/signing-key ----------------------------------------------------------------------------------


def _admin(**settings: object) -> TestClient:
    app = FastAPI()
    app.state.runtime = SimpleNamespace(settings=GatewaySettings(admin_api_key=SecretStr("adm"), **settings))
    app.include_router(admin_router)
    return TestClient(app)


def test_the_admin_api_gives_a_receivers_key_to_the_admin_only() -> None:
    client = _admin(webhook_signing_secret=SecretStr(MASTER))
    url = "https://crm.example.com/hook?token=1"
    got = client.get("/admin/signing-key", params={"url": url}, headers={"X-API-Key": "adm"})
    assert got.status_code == 200, got.text
    assert got.json() == {"url": "https://crm.example.com/hook", "key": key_for(MASTER, url)}
    assert client.get("/admin/signing-key", params={"url": url}).status_code == 401
    assert client.get("/admin/signing-key", params={"url": url}, headers={"X-API-Key": "no"}).status_code == 401
    for bad in ("ftp://crm.example.com/hook", "javascript:alert(1)", "nohost"):
        answer = client.get("/admin/signing-key", params={"url": bad}, headers={"X-API-Key": "adm"})
        assert answer.status_code == 422, bad
    assert client.get("/admin/signing-key", headers={"X-API-Key": "adm"}).status_code == 422  # no url at all


def test_the_admin_key_in_development_is_the_development_secrets() -> None:
    got = _admin().get("/admin/signing-key", params={"url": "http://127.0.0.1:9/h"}, headers={"X-API-Key": "adm"})
    assert got.json()["key"] == key_for(DEVELOPMENT_SECRET, "http://127.0.0.1:9/h")
    closed = TestClient(_admin().app)
    closed.app.state.runtime.settings = GatewaySettings(admin_api_key=SecretStr(""))
    assert closed.get("/admin/signing-key", params={"url": "http://127.0.0.1:9/h"}).status_code == 503

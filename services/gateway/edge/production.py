"""What production mode (``APP_ENV=production``) requires of a gateway before it may serve: every endpoint
and socket authenticated, so no secret that does so may be missing. ``python -m services.gateway`` refuses
to start and ``make check-env`` fails, each naming what is missing."""

from __future__ import annotations

from shared.settings import GatewaySettings

PROVIDERS = ("twilio", "telnyx")


def served_providers(settings: GatewaySettings) -> set[str]:
    """The telephony providers whose webhooks and media sockets this gateway serves (``TELEPHONY_PROVIDERS``)."""
    return {p.strip().lower() for p in settings.telephony_providers.split(",") if p.strip()}


def unknown_providers(settings: GatewaySettings) -> list[str]:
    return sorted(served_providers(settings) - set(PROVIDERS))


def production_problems(settings: GatewaySettings) -> list[str]:
    """Each missing or unsafe setting, as a line that says how to fix it; empty when production-ready."""
    problems = [
        f"TELEPHONY_PROVIDERS names unknown provider {p!r} (known: twilio, telnyx)" for p in unknown_providers(settings)
    ]
    if settings.app_env != "production":
        return problems
    need = {
        "API_KEYS": settings.api_keys.get_secret_value().strip(),
        "ADMIN_API_KEY": settings.admin_api_key.get_secret_value().strip(),
        "STREAM_TOKEN_SECRET": settings.stream_token_secret.get_secret_value().strip(),
        "PUBLIC_HOST": settings.public_host.strip(),
        # HTTP tools are signed with it (the recorder signs post-call webhooks with the same key)
        "WEBHOOK_SIGNING_SECRET": settings.webhook_signing_secret.get_secret_value().strip(),
    }
    served = served_providers(settings)
    if "twilio" in served:
        need["TWILIO_AUTH_TOKEN (Twilio is in TELEPHONY_PROVIDERS)"] = settings.twilio_auth_token.get_secret_value()
    if "telnyx" in served:
        need["TELNYX_PUBLIC_KEY (Telnyx is in TELEPHONY_PROVIDERS)"] = settings.telnyx_public_key.strip()
    problems += [f"{name} is not set" for name, value in need.items() if not value]
    secret = settings.stream_token_secret.get_secret_value().strip()
    if secret and len(secret) < 32:
        problems.append("STREAM_TOKEN_SECRET is shorter than 32 characters (use: openssl rand -hex 32)")
    return problems

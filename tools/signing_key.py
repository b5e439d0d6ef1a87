"""The signing key of one receiver of Victoria's signed requests (an HTTP tool's URL, a post-call webhook's URL).

    python -m tools.signing_key https://crm.example.com/victoria/calls

Prints ``shared.signing.key_for(WEBHOOK_SIGNING_SECRET, url)``: the key that receiver verifies
``X-Victoria-Signature`` with, and that is worth nothing at any other URL. The secret is read from the
environment or ``.env``, as the services read it (``--development``: the development key the services sign with
when none is set). The admin API gives the same key: ``GET /admin/signing-key?url=...``.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.signing import DEVELOPMENT_SECRET, key_for, normalized_url


class _Secret(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    webhook_signing_secret: SecretStr = SecretStr("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.signing_key", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the receiver's http(s) URL (query and fragment do not count)")
    parser.add_argument(
        "--development", action="store_true", help="without WEBHOOK_SIGNING_SECRET: the development key's"
    )
    args = parser.parse_args(argv)
    try:
        normalized_url(args.url)
    except ValueError:
        print(f"signing_key: not an http(s) URL with a host: {args.url!r}", file=sys.stderr)
        return 2
    secret = _Secret().webhook_signing_secret.get_secret_value().strip()
    if not secret and not args.development:
        print(
            "signing_key: WEBHOOK_SIGNING_SECRET is not set (in the environment or .env): set it to the value the "
            "gateway and recorder use\n(--development: the key of the development secret they sign with "
            "when it is empty)",
            file=sys.stderr,
        )
        return 2
    print(key_for(secret or DEVELOPMENT_SECRET, args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Engine construction: once per Lambda container, with one TLS context per container."""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, make_url

SslMode = Literal["verify", "require", "disable"]


@lru_cache(maxsize=4)
def _ssl_context(mode: SslMode, ca_file: str | None) -> ssl.SSLContext:
    # pg8000 otherwise builds a fresh context per connect, reloading the CA store (~27 ms).
    context = ssl.create_default_context(cafile=ca_file)
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def create_db_engine(
    url: str,
    *,
    ssl_mode: SslMode = "verify",
    ssl_ca_file: str | None = None,
    pool_size: int = 1,
    max_overflow: int = 2,
) -> Engine:
    """An engine for `postgresql+pg8000://` URLs; Unix sockets (`?unix_sock=`) never use TLS.

    A Lambda container serves one request at a time, so one pooled connection is enough;
    `pool_pre_ping` replaces connections that died while the container was frozen.
    """
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_dialect().driver == "pg8000":
        uses_socket = "unix_sock" in parsed.query
        if uses_socket or ssl_mode == "disable":
            connect_args["ssl_context"] = False
        else:
            connect_args["ssl_context"] = _ssl_context(ssl_mode, ssl_ca_file)
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args=connect_args,
    )

"""Engine construction: once per Lambda container, with one TLS context per container."""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext

SslMode = Literal["verify", "require", "disable"]


@lru_cache(maxsize=4)
def _ssl_context(mode: SslMode, ca_file: str | None) -> ssl.SSLContext:
    # pg8000 otherwise builds a fresh context per connect, reloading the CA store (~27 ms).
    context = ssl.create_default_context(cafile=ca_file)
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# SQLSTATEs of a connection that is gone, besides pg8000's "network error": class 08
# (connection exception; PgBouncer's "server conn crashed?" is 08P01) and the server's
# shutdown, crash and start-up refusals (57P01-57P03, pg_terminate_backend's included).
_DISCONNECT_CODES = ("57P01", "57P02", "57P03")


def _mark_disconnects(context: ExceptionContext) -> None:
    arguments = getattr(context.original_exception, "args", ())
    fields = arguments[0] if arguments and isinstance(arguments[0], dict) else {}
    code = str(fields.get("C", ""))
    if code.startswith("08") or code in _DISCONNECT_CODES:
        context.is_disconnect = True


def create_db_engine(
    url: str,
    *,
    ssl_mode: SslMode = "verify",
    ssl_ca_file: str | None = None,
    pool_size: int = 1,
    max_overflow: int = 0,
    pre_ping: bool = False,
) -> Engine:
    """An engine for `postgresql+pg8000://` URLs; Unix sockets (`?unix_sock=`) never use TLS.

    A Lambda container serves one request at a time: one connection, no overflow, so a
    function's connections are its concurrency (the README's budget). No ping before each
    checkout: the repository retries a transaction's first statement once when it finds the
    connection dead (frozen containers), and a disconnect is recognised by its SQLSTATE too.
    """
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_dialect().driver == "pg8000":
        uses_socket = "unix_sock" in parsed.query
        if uses_socket or ssl_mode == "disable":
            connect_args["ssl_context"] = False
        else:
            connect_args["ssl_context"] = _ssl_context(ssl_mode, ssl_ca_file)
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )
    event.listen(engine, "handle_error", _mark_disconnects)
    return engine

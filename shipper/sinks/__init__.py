"""Outputs (Elasticsearch). Importing this package imports aiohttp without its default
TLS contexts' CA store; see :func:`_import_aiohttp`."""

from __future__ import annotations

import os
import sys

_CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def _import_aiohttp() -> None:
    """Import aiohttp with OpenSSL's default CA locations pointed at nothing.

    ``aiohttp.connector`` builds two TLS contexts at import, one of them loading the
    system's CA store (~50 ms of CPU for the two and ~2 MiB of RSS at every start, on
    this machine). shipper never uses them: elastic_transport hands aiohttp a context of
    its own for an https node (made after this import, with the real CA store) and
    ``ssl=False`` for an http one, and the webhooks make their own. A request that did
    fall back on them would fail verification (no CA), never pass unchecked. The
    environment is as it was once the import is done."""
    if "aiohttp.connector" in sys.modules:
        return
    saved = {k: os.environ.get(k) for k in _CA_ENV}
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_import_aiohttp()

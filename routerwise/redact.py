"""Credentials out of everything the kit writes: URLs, commands, messages, provenance.

An endpoint URL may carry ``user:password@`` or a key in its query string, and an engine
command may carry ``--api-key KEY``; none of it may reach a profile table, a manifest, a
request table or a log. :func:`redact_url` strips credentials from a URL (what is left is the
endpoint's identity: scheme, host, port, path); :func:`redact_text` masks them anywhere in
free text with ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_NAMES", "redact_url", "redact_text"]

MASK = "***"
# Query parameters, options and key=value names whose values are secrets.
SECRET_NAMES = ("api_key", "api-key", "apikey", "key", "token", "access_token", "auth",
                "password", "passwd", "secret", "signature", "sig")

_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
_PATTERNS = (
    # scheme://user:password@host  or  scheme://token@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@"), rf"\1{MASK}@"),
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    # --api-key VALUE, --token=VALUE
    (re.compile(rf"(?i)(--(?:{_NAMES})(?:=|\s+))(?!{re.escape(MASK)})[^\s'\"]+"), rf"\1{MASK}"),
    # api_key=VALUE, "token": "VALUE", password: VALUE (also inside query strings)
    (re.compile(rf"(?i)(\b(?:{_NAMES})[\"']?\s*[:=]\s*[\"']?)(?!{re.escape(MASK)})[^\s&,;'\"]+"),
     rf"\1{MASK}"),
)


def redact_url(url: str) -> str:
    """``url`` without ``user:password@`` and with secret query values masked.

    Scheme, host, port and path are kept, so two URLs that differ only in credentials redact
    to the same string (the endpoint's identity).
    """
    if not url:
        return url
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
    except ValueError:
        return redact_text(str(url))
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in SECRET_NAMES else v) for k, v in pairs],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials, bearer tokens, ``--api-key X`` / ``key=X`` values and
    every string in ``secrets`` replaced by ``***``."""
    if not text:
        return text
    out = str(text)
    for s in secrets:
        if s:
            out = out.replace(s, MASK)
    for pat, repl in _PATTERNS:
        out = pat.sub(repl, out)
    return out

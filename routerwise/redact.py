"""Credentials out of everything the kit writes: URLs, commands, messages, provenance.

An endpoint URL may carry ``user:password@`` or a key in its query string, and an engine
command may carry ``--api-key KEY`` or ``--hf-token TOKEN``; none of it may reach a profile
table, a manifest, a request table, a log or an error message. :func:`redact_url` strips
credentials from a URL (what is left is the endpoint's identity: scheme, host, port, path);
:func:`redact_text` masks them anywhere in free text with ``***``.

Two rules find a secret:

* by its name (:func:`is_secret_name`): the value of an option (``--hf-token X``,
  ``--hf_token=X``), a variable or key (``HF_TOKEN=X``, ``"api_key": "X"``, ``password: X``)
  or a query parameter (``?hf_token=X&``) whose name has a word that is a secret word
  (ending in token, key, secret, password, credential; or auth, sig, ...). Case does not
  matter and ``-`` and ``_`` are alike; counts such as ``max_tokens`` are not secrets;
* by its shape: ``Bearer X`` / ``Basic X``, URL user info, and the well-known token formats
  (``hf_...``, ``sk-...``, ``ghp_...``, ``AKIA...``, JWTs) wherever they stand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_NAMES", "SECRET_WORDS", "is_secret_name", "redact_url",
           "redact_text", "secret_values"]

MASK = "***"
# A word of a name (split at - and _) that ends in one of these makes the name a secret's
# ("token", "hftoken", "apikey"; not "tokens", "tokenizer", "keyfile").
SECRET_WORDS = ("token", "key", "keys", "secret", "secrets", "password", "passwd",
                "credential", "credentials")
# Words that are secret names on their own.
SECRET_NAMES = ("auth", "authorization", "passphrase", "sig", "signature")

_WORD = re.compile(rf"[a-z0-9]*(?:{'|'.join(SECRET_WORDS)})|{'|'.join(SECRET_NAMES)}")
_Q = r"\\?[\"']?"  # an optional (JSON-escaped) quote around a name
# a value: quoted (may hold spaces; JSON-escaped quotes too) or up to a space or separator
_VALUE = re.compile(r"\\?\"[^\"\\]*\\?\"|'[^']*'|\\?[\"']?[^\s&,;'\"\\<>()\[\]{}]+")
# What comes before a value (matched apart from it, and the value only after a secret's name,
# so that text without secrets is scanned in linear time):
# --name VALUE, --name=VALUE, and in a printed argv ['--name', 'VALUE'] (a following --option
# is not a value)
_OPTION = re.compile(r"(?<![\w-])--(?P<name>[A-Za-z0-9][\w.-]*)(?:=|\s+|[\"']\s*,\s*)"
                     r"(?![\"']?--)")
# NAME=VALUE, "name": "value", name: value, ?name=value& (a Bearer/Basic header value is
# left to its own rule, which keeps the scheme readable)
_ASSIGN = re.compile(rf"(?<![\w.-]){_Q}(?P<name>[A-Za-z_][\w.-]*){_Q}\s*[:=]\s*"
                     r"(?!(?i:bearer|basic)\s)")
_NOT_SECRETS = ("", MASK, "None", "null")  # nothing to hide ("hf_token=None")
_SHAPES = (
    # scheme://user:password@host  or  scheme://token@host
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@"), rf"\1{MASK}@"),
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    # Hugging Face, OpenAI/Anthropic, GitHub, Slack, AWS access key ids, JWTs
    (re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
                r"|github_pat_\w{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}"
                r"|eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+)"), MASK),
)


def is_secret_name(name: str) -> bool:
    """Whether an option, variable, key or query parameter called ``name`` holds a secret
    (see the module notes): ``HF_TOKEN``, ``--openai-api-key``, ``x-api-key``, ``auth``; not
    ``max_tokens``, ``tokenizer``, ``port``."""
    words = re.split(r"[-_.]+", str(name).lower())
    return any(_WORD.fullmatch(w) for w in words if w)


def _mask_named(pat: re.Pattern, text: str) -> str:
    """Mask the value after every match of ``pat`` whose group ``name`` is a secret's name.

    The value of a name that is not a secret's is scanned on, so a secret inside it
    (``url: http://h/?token=X``) is still found."""
    out, done, pos = [], 0, 0
    while (m := pat.search(text, pos)) is not None:
        v = _VALUE.match(text, m.end()) if is_secret_name(m.group("name")) else None
        value = v.group() if v is not None else ""
        core = value.strip("\\\"'")
        if core in _NOT_SECRETS:
            pos = m.end("name")
            continue
        start, end = v.span()
        lead = value[:len(value) - len(value.lstrip("\\\"'"))]
        trail = value[len(value.rstrip("\\\"'")):]
        out += [text[done:start], lead, MASK, trail]
        done = pos = end
    return "".join(out) + text[done:]


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
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every string in ``secrets``, URL credentials, bearer tokens, known token
    formats and the values of secret-named options, variables and parameters replaced by
    ``***`` (see the module notes). Applying it twice changes nothing more."""
    if not text:
        return text
    out = str(text)
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        out = out.replace(s, MASK)
    for pat, repl in _SHAPES:
        out = pat.sub(repl, out)
    for pat in (_OPTION, _ASSIGN):
        out = _mask_named(pat, out)
    return out


def secret_values(args: Iterable[str] = (), env: Mapping[str, str] | None = None,
                  min_chars: int = 6) -> list[str]:
    """The secrets a command line and environment hand over by name: values of secret-named
    options in ``args`` (``--hf-token X``, ``--api-key=X``) and of secret-named variables in
    ``env``, for :func:`redact_text` ``secrets=`` (so that a program echoing them in any form
    is masked too). Values shorter than ``min_chars`` are left to the name rules, so that
    masking every occurrence does not garble the text."""
    args = [str(a) for a in args]
    found = []
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        name, eq, value = a[2:].partition("=")
        if not is_secret_name(name):
            continue
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        found.append(value)
    found += [str(v) for k, v in (env or {}).items() if is_secret_name(k)]
    return [v for v in dict.fromkeys(found) if len(v) >= min_chars and v != MASK]

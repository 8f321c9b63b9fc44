"""Credentials never reach a written file: URL user:password, query keys, --api-key, Bearer."""

from __future__ import annotations

import pytest

from routerwise.redact import redact_text, redact_url


@pytest.mark.parametrize("url, shown", [
    ("http://alice:pw@10.0.0.2:8000/v1", "http://10.0.0.2:8000/v1"),
    ("https://tok3n@api.example.com", "https://api.example.com"),
    ("http://h:1/v1?api_key=sk-123&model=x", "http://h:1/v1?api_key=***&model=x"),
    ("http://[::1]:8000", "http://[::1]:8000"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_every_form_and_keeps_the_rest():
    text = ('POST http://bob:hunter2@h:1/v1 failed; engine: vllm serve m --api-key sk-abc '
            '--port 8000 --token=t0k; {"api_key": "zz9"} Authorization: Bearer eyJ.x-y '
            'password=p4ss connect_timeout_s=3 num_tokens=5 my-own-secret')
    out = redact_text(text, secrets=["my-own-secret"])
    for secret in ("hunter2", "bob:", "sk-abc", "t0k", "zz9", "eyJ.x-y", "p4ss", "my-own-secret"):
        assert secret not in out
    for kept in ("http://***@h:1/v1", "--port 8000", "connect_timeout_s=3", "num_tokens=5",
                 "vllm serve m"):
        assert kept in out
    assert redact_text(out) == out  # idempotent

"""Data files: download into the cache from a local HTTP server (checksum verified, atomic),
the offline setting, and the mirror."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from routerwise import settings
from routerwise.data import registry as datasets
from routerwise.errors import ChecksumMismatch, MissingDataFile, ValidationError

PAYLOAD = b"model,score\na,0.5\nb,0.25\n"
SOURCE = datasets.DataSource("test.file", datasets.Repo("owner", "repo", "c0ffee" * 6 + "abcd",
                                                        "MIT", "test"),
                             "data/file.csv", hashlib.sha256(PAYLOAD).hexdigest(), "a test file")


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves ``root`` on 127.0.0.1 and points every DataSource URL at it; counts requests."""
    root = tmp_path / "www"
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    monkeypatch.setattr(datasets.DataSource, "url", property(lambda s: f"{base}/{s.relpath}"))
    monkeypatch.setitem(datasets.REGISTRY, SOURCE.key, SOURCE)
    monkeypatch.delenv("ROUTERWISE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("ROUTERWISE_OFFLINE", "0")
    monkeypatch.setenv("ROUTERWISE_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield root, hits
    finally:
        srv.shutdown()
        srv.server_close()


def _publish(root, data: bytes):
    p = root / SOURCE.relpath
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_download_fills_the_cache_once(server, tmp_path):
    root, hits = server
    _publish(root, PAYLOAD)
    path = datasets.fetch(SOURCE.key)
    assert path == tmp_path / "cache" / SOURCE.relpath and path.read_bytes() == PAYLOAD
    assert datasets.fetch(SOURCE.key) == path and len(hits) == 1  # second call: the cache


def test_a_download_with_other_bytes_is_rejected_and_not_cached(server, tmp_path):
    root, hits = server
    _publish(root, PAYLOAD.replace(b"0.5", b"0.6"))
    with pytest.raises(ChecksumMismatch, match="expected " + SOURCE.sha256):
        datasets.fetch(SOURCE.key)
    folder = (tmp_path / "cache" / SOURCE.relpath).parent
    assert not folder.exists() or list(folder.iterdir()) == []  # no file, no temp file


def test_a_missing_remote_file_is_a_typed_error(server):
    with pytest.raises(MissingDataFile, match="could not download.*HTTP Error 404"):
        datasets.fetch(SOURCE.key)


@pytest.mark.parametrize("word", ["1", "true", "YES", "on", " On "])
def test_offline_words_forbid_downloads(server, monkeypatch, word):
    root, hits = server
    _publish(root, PAYLOAD)
    monkeypatch.setenv("ROUTERWISE_OFFLINE", word)
    assert settings.offline() is True
    with pytest.raises(MissingDataFile, match="ROUTERWISE_OFFLINE is set"):
        datasets.fetch(SOURCE.key)
    assert hits == []


@pytest.mark.parametrize("word", ["0", "false", "No", "off", ""])
def test_online_words_allow_downloads(server, monkeypatch, word):
    root, hits = server
    _publish(root, PAYLOAD)
    monkeypatch.setenv("ROUTERWISE_OFFLINE", word)
    assert settings.offline() is False
    assert datasets.fetch(SOURCE.key).read_bytes() == PAYLOAD and len(hits) == 1


def test_an_unknown_offline_word_is_an_error_even_with_a_mirror(server, monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTERWISE_OFFLINE", "maybe")
    with pytest.raises(ValidationError, match="ROUTERWISE_OFFLINE='maybe' is neither"):
        settings.offline()
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(ValidationError, match="ROUTERWISE_OFFLINE"):
        datasets.fetch(SOURCE.key)


def test_the_mirror_is_read_and_never_downloads(server, monkeypatch, tmp_path):
    root, hits = server
    _publish(root, PAYLOAD)
    mirror = tmp_path / "mirror"
    monkeypatch.setenv("ROUTERWISE_DATA_MIRROR", str(mirror))
    with pytest.raises(MissingDataFile, match="not in the mirror"):
        datasets.fetch(SOURCE.key)
    (mirror / SOURCE.relpath).parent.mkdir(parents=True)
    (mirror / SOURCE.relpath).write_bytes(PAYLOAD)
    assert datasets.fetch(SOURCE.key) == mirror / SOURCE.relpath and hits == []

"""The demo site at / (--www; the shared server serves the source folder www/) and the model
file at /models/<name>, where the page looks for it; the API keeps its own paths."""

import os
from pathlib import Path

import httpx

from conftest import MODEL_ID, ROOT


def test_site_pages_are_served(server):
    r = httpx.get(f"{server.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.headers
    assert r.text == (ROOT / "www" / "index.html").read_text()
    r = httpx.get(f"{server.url}/app.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"], r.headers
    assert httpx.get(f"{server.url}/style.css").headers["content-type"].startswith("text/css")


def test_missing_files_and_escapes_get_json_404s(server):
    for path in ["/nope.html", "/../Cargo.toml", "/%2e%2e/Cargo.toml", "/models/other.gguf"]:
        r = httpx.get(server.url + path)
        assert r.status_code == 404, f"{path}: {r.status_code}"
        assert r.json()["error"]["type"] == "invalid_request_error", path


def test_the_model_file_is_served_in_ranges(server):
    r = httpx.get(f"{server.url}/models/{MODEL_ID}.gguf", headers={"range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == b"GGUF", (r.status_code, r.content[:8])
    models = Path(os.environ.get("AETHER_MODELS_DIR", ROOT / "models"))
    size = (models / f"{MODEL_ID}.gguf").stat().st_size
    assert r.headers["content-range"] == f"bytes 0-3/{size}"


def test_the_api_still_wins_over_the_site(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == MODEL_ID


def test_no_www_serves_no_site(start_server):
    s = start_server("-c", "256", "--no-www")
    r = httpx.get(f"{s.url}/")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{s.url}/models/{MODEL_ID}.gguf").status_code == 404

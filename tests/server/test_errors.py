"""Bad input gets the documented status and OpenAI's error JSON, never a 5xx.

Each row of TABLE is one request: (name, method, path, body, headers, status, param, code).
`body` is a dict/list (sent as JSON), bytes/str (sent as is) or None; `param`/`code` are
checked when not ANY. The 401 rows run against a second server started with --api-key."""

import json

import httpx
import pytest

C, T = "/v1/chat/completions", "/v1/completions"
U = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}
ANY = object()


def chat(**kw):
    return {"messages": U, **kw}


TABLE = [
    # 400: malformed bodies
    ("invalid JSON", "POST", C, b"{not json", JSON, 400, None, ANY),
    ("empty body", "POST", C, b"", JSON, 400, None, ANY),
    ("body is a list", "POST", C, [], JSON, 400, None, ANY),
    ("body is null", "POST", C, b"null", JSON, 400, None, ANY),
    ("body not UTF-8", "POST", C, b'{"messages":[{"role":"user","content":"\xff"}]}', JSON, 400, None, ANY),
    ("messages missing", "POST", C, {}, JSON, 400, None, ANY),
    ("messages not a list", "POST", C, {"messages": "hi"}, JSON, 400, None, ANY),
    ("messages empty", "POST", C, {"messages": []}, JSON, 400, "messages", ANY),
    ("message without role", "POST", C, {"messages": [{"content": "hi"}]}, JSON, 400, None, ANY),
    ("image content part", "POST", C,
     {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, JSON, 400,
     "messages", ANY),
    # 400: wrong types and values out of range
    ("temperature not a number", "POST", C, chat(temperature="hot"), JSON, 400, None, ANY),
    ("temperature too high", "POST", C, chat(temperature=5), JSON, 400, "temperature", ANY),
    ("temperature just above 2", "POST", C, chat(temperature=2.0000001), JSON, 400, "temperature", ANY),
    ("top_p above 1", "POST", C, chat(top_p=1.5), JSON, 400, "top_p", ANY),
    ("top_k negative", "POST", C, chat(top_k=-1), JSON, 400, "top_k", ANY),
    ("presence_penalty above 2", "POST", C, chat(presence_penalty=3), JSON, 400, "presence_penalty", ANY),
    ("max_tokens negative", "POST", C, chat(max_tokens=-5), JSON, 400, "max_tokens", ANY),
    ("max_tokens zero", "POST", C, chat(max_tokens=0), JSON, 400, "max_tokens", ANY),
    ("max_tokens absurd", "POST", C, chat(max_tokens=100_000_000_000), JSON, 400, "max_tokens", ANY),
    ("max_tokens fractional", "POST", C, chat(max_tokens=1.5), JSON, 400, None, ANY),
    ("max_completion_tokens negative", "POST", C, chat(max_completion_tokens=-1), JSON, 400, "max_completion_tokens",
     ANY),
    ("logit_bias id outside the vocabulary", "POST", C, chat(logit_bias={"999999": 1}), JSON, 400, "logit_bias", ANY),
    ("logit_bias key not an id", "POST", C, chat(logit_bias={"abc": 1}), JSON, 400, "logit_bias", ANY),
    ("logit_bias value above 100", "POST", C, chat(logit_bias={"5": 1000}), JSON, 400, "logit_bias", ANY),
    ("n above 1", "POST", C, chat(n=2), JSON, 400, "n", ANY),
    ("17 stop strings", "POST", C, chat(stop=[str(i) for i in range(17)]), JSON, 400, "stop", ANY),
    ("stop string too long", "POST", C, chat(stop="x" * 300), JSON, 400, "stop", ANY),
    ("seed negative", "POST", C, chat(seed=-1), JSON, 400, "seed", ANY),
    ("seed beyond 64 bits", "POST", C, chat(seed=2**64), JSON, 400, "seed", ANY),
    ("stream not a boolean", "POST", C, chat(stream="yes"), JSON, 400, None, ANY),
    ("top_logprobs above 20", "POST", C, chat(logprobs=True, top_logprobs=21), JSON, 400, "top_logprobs", ANY),
    ("completion logprobs above 20", "POST", T, {"prompt": "hi", "logprobs": 50}, JSON, 400, "logprobs", ANY),
    ("prompt missing", "POST", T, {}, JSON, 400, None, ANY),
    ("prompt a number", "POST", T, {"prompt": 123}, JSON, 400, "prompt", ANY),
    ("prompt a list of two", "POST", T, {"prompt": ["a", "b"]}, JSON, 400, "prompt", ANY),
    ("prompt empty", "POST", T, {"prompt": ""}, JSON, 400, "prompt", ANY),
    # 400: longer than the context (512 tokens)
    ("prompt longer than the context", "POST", T, {"prompt": "word " * 2000}, JSON, 400, "prompt",
     "context_length_exceeded"),
    ("prompt of a megabyte", "POST", T, {"prompt": "a" * (1 << 20)}, JSON, 400, "prompt", "context_length_exceeded"),
    ("messages longer than the context", "POST", C,
     {"messages": [{"role": "user", "content": "word " * 300}, {"role": "user", "content": "word " * 300}]}, JSON, 400,
     "messages", "context_length_exceeded"),
    # 404, 405, 413, 415
    ("unknown model", "POST", C, chat(model="gpt-4"), JSON, 404, "model", "model_not_found"),
    ("unknown route", "POST", "/v1/nope", chat(), JSON, 404, None, ANY),
    ("GET on a POST route", "GET", C, None, {}, 405, None, ANY),
    ("body over the limit", "POST", T, {"prompt": "x" * (5 << 20)}, JSON, 413, None, ANY),
    ("text/plain body", "POST", C, json.dumps(chat()), {"content-type": "text/plain"}, 415, None, ANY),
    ("no content type", "POST", C, json.dumps(chat()).encode(), {}, 415, None, ANY),
    ("form body", "POST", T, b"prompt=hi", {"content-type": "application/x-www-form-urlencoded"}, 415, None, ANY),
    # the other endpoints
    ("tokenize content not a string", "POST", "/tokenize", {"content": 5}, JSON, 400, None, ANY),
    ("detokenize id outside the vocabulary", "POST", "/detokenize", {"tokens": [99999999]}, JSON, 400, "tokens", ANY),
    ("detokenize negative id", "POST", "/detokenize", {"tokens": [-1]}, JSON, 400, "tokens", ANY),
]

KEY = "s3cret-key"
KEYED = [
    ("no key", {}, 401),
    ("wrong key", {"authorization": f"Bearer {KEY}x"}, 401),
    ("key prefix", {"authorization": f"Bearer {KEY[:-1]}"}, 401),
    ("basic scheme", {"authorization": f"Basic {KEY}"}, 401),
    ("right key", {"authorization": f"Bearer {KEY}"}, 200),
]


def send(url, method, path, body, headers):
    if isinstance(body, (dict, list)):
        content = json.dumps(body).encode()
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = body
    return httpx.request(method, url + path, content=content, headers=headers, timeout=60)


def assert_openai_error(r, status, param=ANY, code=ANY):
    assert r.status_code == status, f"status {r.status_code}, want {status}: {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    err = r.json().get("error")
    assert isinstance(err, dict), f"no error object: {r.text[:300]}"
    assert set(err) == {"message", "type", "param", "code"}, f"error keys {sorted(err)}"
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if param is not ANY:
        assert err["param"] == param, f"param {err['param']!r}, want {param!r}: {err['message']}"
    if code is not ANY:
        assert err["code"] == code, f"code {err['code']!r}, want {code!r}: {err['message']}"


def test_the_table_is_big_enough():
    assert len(TABLE) + len(KEYED) >= 25


@pytest.mark.parametrize("name,method,path,body,headers,status,param,code", TABLE, ids=[r[0] for r in TABLE])
def test_bad_input(server, name, method, path, body, headers, status, param, code):
    r = send(server.url, method, path, body, headers)
    assert_openai_error(r, status, param, code)
    if status == 405:
        assert r.headers.get("allow") == "POST", r.headers.get("allow")


@pytest.fixture(scope="module")
def keyed(start_server_module):
    return start_server_module("-c", "256", "--api-key", KEY)


@pytest.fixture(scope="module")
def start_server_module():
    from conftest import Server

    started = []

    def start(*flags):
        started.append(Server(*flags))
        return started[-1]

    yield start
    for s in started:
        assert s.stop() == 0, s.output()


@pytest.mark.parametrize("name,headers,status", KEYED, ids=[r[0] for r in KEYED])
def test_api_key(keyed, name, headers, status):
    for method, path, body in [("GET", "/v1/models", None), ("POST", T, {"prompt": "hi", "max_tokens": 1}),
                               ("GET", "/metrics", None)]:
        h = {**headers, **JSON} if body else headers
        r = send(keyed.url, method, path, body, h)
        if status == 401:
            assert_openai_error(r, 401, None, "invalid_api_key")
        else:
            assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text[:200]}"
    # /health stays public.
    assert httpx.get(f"{keyed.url}/health", headers=headers).status_code == 200


def test_no_server_errors_were_counted(server):
    """Runs after the table: the server's own count of answers by status gained no 5xx."""
    assert not server.new_fives(), f"5xx answers: {server.new_fives()}"

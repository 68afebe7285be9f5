"""The official `openai` Python client against `aether serve`: chat and text completions,
streaming and not, stop strings, max_tokens → `length`, seeds, logprobs, and streamed text equal
to non-streamed text. Greedy where the text must be reproducible."""

import math

import httpx
import openai
import pytest

from conftest import MODEL_ID

CAPITAL = "The capital of France is"
# What the default model continues CAPITAL with, greedily (native/tests/server.rs agrees).
CAPITAL_GREEDY_8 = " Paris.\n\nThe United States has"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def chat(client, content, **kw):
    return client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": content}], **kw)


def stream_chat(client, content, **kw):
    """(text, finish_reason, chunks) of a streamed chat completion."""
    chunks = list(chat(client, content, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1, f"one chunk must carry finish_reason, got {finish}"
    return text, finish[0], chunks


def stream_completion(client, prompt, **kw):
    chunks = list(client.completions.create(model=MODEL_ID, prompt=prompt, stream=True, **kw))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1, f"one chunk must carry finish_reason, got {finish}"
    return text, finish[0], chunks


def test_models_lists_the_served_model(client):
    ids = [m.id for m in client.models.list()]
    assert ids == [MODEL_ID]


def test_completion_greedy_text_and_usage(client):
    r = client.completions.create(model=MODEL_ID, prompt=CAPITAL, max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text == CAPITAL_GREEDY_8
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 8, 13)


def test_completion_stream_equals_non_stream(client):
    kw = dict(max_tokens=24, temperature=0)
    whole = client.completions.create(model=MODEL_ID, prompt=CAPITAL, **kw)
    text, finish, chunks = stream_completion(client, CAPITAL, **kw)
    assert text == whole.choices[0].text, f"streamed {text!r} != {whole.choices[0].text!r}"
    assert finish == whole.choices[0].finish_reason
    assert len(chunks) > 3, "the text came in one chunk: not streamed per token"


def test_chat_stream_equals_non_stream(client):
    kw = dict(max_tokens=32, temperature=0)
    whole = chat(client, "Name three colors.", **kw)
    assert whole.object == "chat.completion"
    assert whole.choices[0].message.role == "assistant"
    assert whole.usage.prompt_tokens > 10, "the chat template was not applied"
    text, finish, chunks = stream_chat(client, "Name three colors.", **kw)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "chunks of one answer share one id"
    assert text == whole.choices[0].message.content, f"streamed {text!r} != {whole.choices[0].message.content!r}"
    assert finish == whole.choices[0].finish_reason


def test_non_ascii_text_streams_as_whole_characters(client):
    # Characters spanning several tokens must arrive whole: every chunk is valid JSON with
    # valid UTF-8 (the client parses each), and the pieces add up to the non-streamed text.
    prompt = "日本語の文章: 東京は"
    kw = dict(max_tokens=24, temperature=0)
    whole = client.completions.create(model=MODEL_ID, prompt=prompt, **kw).choices[0].text
    text, _, _ = stream_completion(client, prompt, **kw)
    assert text == whole
    assert "\ufffd" not in text, f"a broken character in {text!r}"


def test_stop_string_ends_with_stop_and_is_not_shown(client):
    r = client.completions.create(model=MODEL_ID, prompt=CAPITAL, max_tokens=8, temperature=0, stop=".")
    assert (r.choices[0].text, r.choices[0].finish_reason) == (" Paris", "stop")
    # A stop string spanning tokens ('.', '\n', '\n', 'The'), in a list, streamed.
    text, finish, _ = stream_completion(client, CAPITAL, max_tokens=16, temperature=0, stop=["zzz", ".\n\nThe"])
    assert (text, finish) == (" Paris", "stop")
    text, finish, _ = stream_chat(client, "Count from 1 to 10.", max_tokens=48, temperature=0, stop=["5"])
    assert finish == "stop" and "5" not in text, text


def test_max_tokens_ends_with_length(client):
    for kw in (dict(max_tokens=3), dict(max_completion_tokens=3)):
        r = chat(client, "Tell me a long story.", temperature=0, **kw)
        assert r.choices[0].finish_reason == "length", kw
        assert r.usage.completion_tokens == 3, kw
    _, finish, chunks = stream_chat(client, "Tell me a long story.", temperature=0, max_tokens=3)
    assert finish == "length"
    assert chunks[-1].usage.completion_tokens == 3


def test_same_seed_same_text_at_temperature_one(client):
    kw = dict(max_tokens=24, temperature=1.0, top_p=1.0, seed=1234)
    a = chat(client, "Write a sentence about the sea.", **kw).choices[0].message.content
    b = chat(client, "Write a sentence about the sea.", **kw).choices[0].message.content
    assert a == b, f"same seed, different text: {a!r} vs {b!r}"
    streamed, _, _ = stream_chat(client, "Write a sentence about the sea.", **kw)
    assert streamed == a, "streaming changed the sampled text"
    others = {chat(client, "Write a sentence about the sea.", **{**kw, "seed": s}).choices[0].message.content
              for s in (1, 2, 3)}
    assert others != {a}, "seeds 1, 2, 3 all gave the text of seed 1234"


def test_unseeded_sampling_varies(client):
    texts = {client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=16,
                                       temperature=1.0, top_p=1.0).choices[0].text for _ in range(3)}
    assert len(texts) > 1, f"three unseeded samples were identical: {texts}"


def check_top(top, k, chosen_logprob=None):
    assert len(top) == k, f"{len(top)} alternatives, asked {k}"
    lps = [t.logprob for t in top]
    assert lps == sorted(lps, reverse=True), f"alternatives not best first: {lps}"
    assert all(lp <= 0 for lp in lps), lps
    assert sum(math.exp(lp) for lp in lps) <= 1.0 + 1e-4
    if chosen_logprob is not None:
        # Greedy: the chosen token is the most likely one.
        assert abs(lps[0] - chosen_logprob) < 1e-5, (lps[0], chosen_logprob)


def test_chat_logprobs(client):
    r = chat(client, "Say something.", max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 6
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert e.logprob <= 0
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
        check_top(e.top_logprobs, 3, e.logprob)
    # No logprobs unless asked.
    assert chat(client, "Say something.", max_tokens=2).choices[0].logprobs is None

    # Streamed: the same tokens with the same numbers, spread over the chunks.
    _, _, chunks = stream_chat(client, "Say something.", max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in content]


def test_sampled_logprobs_do_not_depend_on_temperature(client):
    # The log-probabilities are the model's, before temperature: a token's number is the same
    # whatever the sampler did with it.
    kw = dict(max_tokens=1, logprobs=True, top_logprobs=5)
    greedy = chat(client, "Hello!", temperature=0, **kw).choices[0].logprobs.content[0]
    hot = chat(client, "Hello!", temperature=1.5, seed=7, **kw).choices[0].logprobs.content[0]
    assert [(t.token, round(t.logprob, 4)) for t in greedy.top_logprobs] == \
        [(t.token, round(t.logprob, 4)) for t in hot.top_logprobs]
    listed = {t.token: t.logprob for t in hot.top_logprobs}
    if hot.token in listed:
        assert hot.logprob == pytest.approx(listed[hot.token], abs=1e-5)
    else:
        assert hot.logprob <= hot.top_logprobs[-1].logprob


def test_completion_logprobs(client):
    r = client.completions.create(model=MODEL_ID, prompt=CAPITAL, max_tokens=5, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text == " Paris.\n\nThe"
    assert len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 2 and max(top.values()) == pytest.approx(l, abs=1e-5) and top[tok] == pytest.approx(l, abs=1e-5)
    _, _, chunks = stream_completion(client, CAPITAL, max_tokens=5, temperature=0, logprobs=2)
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert streamed == lp.tokens


def test_stream_options_include_usage(client):
    chunks = list(chat(client, "Hi", max_tokens=4, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert chunks[-2].choices[0].finish_reason == "length"


def test_tokenize_detokenize_round_trip(server):
    tokens = httpx.post(f"{server.url}/tokenize", json={"content": CAPITAL}).json()["tokens"]
    assert tokens == [504, 3575, 282, 4649, 314]
    assert httpx.post(f"{server.url}/detokenize", json={"tokens": tokens}).json() == {"content": CAPITAL}


def test_metrics_has_the_documented_series(server):
    m = server.metrics()
    for name in ["aether_queue_depth", "aether_busy_slots", "aether_slots", "aether_kv_cache_tokens",
                 "aether_kv_cache_capacity_tokens", "aether_kv_cache_usage_ratio", "aether_prompt_tokens_total",
                 "aether_completion_tokens_total", "aether_time_to_first_token_seconds_count",
                 "aether_token_latency_seconds_count", "aether_forward_steps_total",
                 "aether_forward_step_runs_total"]:
        assert name in m, f"/metrics lacks {name}"
    assert m["aether_slots"] == 4
    assert m["aether_kv_cache_capacity_tokens"] == 4 * 512


def test_openapi_names_the_model_and_the_vocabulary(server):
    import re

    doc = httpx.get(f"{server.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert MODEL_ID in schemas["ModelName"]["enum"]
    n_vocab = schemas["TokenId"]["maximum"] + 1
    assert n_vocab == 49152
    ids = re.compile(schemas["LogitBias"]["propertyNames"]["pattern"])
    wrong = [i for i in range(n_vocab) if not ids.search(str(i))]
    assert not wrong, f"ids the logit_bias pattern refuses: {wrong[:10]}"
    for bad in [str(n) for n in range(n_vocab, n_vocab + 2000)] + ["00", "01", "-1", "1.0", "", " 1", "99999999"]:
        assert not ids.search(bad), f"the logit_bias pattern accepts {bad!r}"

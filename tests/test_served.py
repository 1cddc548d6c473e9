"""Served seats (``openai:MODEL``) against a real OpenAI-compatible server: ``transformers serve``
on 127.0.0.1 serving a tiny local GPT-2 (tests/servers.py), never a mock. Greedy (the model's
generation config has ``do_sample=False``), so a served episode must equal the embedded LM's."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")
pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import yaml  # noqa: E402
from servers import Server, save_chat_lm  # noqa: E402

import feedbackgym  # noqa: E402
from feedbackgym.agents import make_agent  # noqa: E402
from feedbackgym.agents.lm import LMAgent  # noqa: E402
from feedbackgym.agents.prompts import view_chat  # noqa: E402
from feedbackgym.agents.served import ServedAgent, ServedError, ServedOptions  # noqa: E402
from feedbackgym.cli import main  # noqa: E402
from feedbackgym.envs.engine import Episode  # noqa: E402
from feedbackgym.envs.scenario import ScenarioError, load_scenario, scenario_dir  # noqa: E402
from feedbackgym.records import read_records  # noqa: E402
from feedbackgym.rollout import rollout  # noqa: E402

TEXTS = [
    "Task: Answer a question about a fictional world.\nactor: The answer is Hestoth.\n"
    "judge: Not Hestoth: the passage [doc1] makes Voudom the supported answer.\nactor: The answer is Voudom.\n"
] * 20
#: short and few: a dead server must fail fast
PARAMS = {"max_tokens": 8, "timeout": 10, "max_retries": 0}
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return save_chat_lm(tmp_path_factory.mktemp("served_lm") / "tiny", TEXTS)


@pytest.fixture(scope="module")
def server(chat_model, tmp_path_factory):
    with Server(chat_model, log=tmp_path_factory.mktemp("serve") / "serve.log") as s:
        yield s


@pytest.fixture
def env_url(server, monkeypatch):
    """OPENAI_BASE_URL names the server (the seats' params give no base_url); no API key."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return server.url


def write_scenario(path, actor: str, judge: str, **params) -> str:
    """judged_qa as a user writes it: the seats' specs and their params, in YAML."""
    data = yaml.safe_load((scenario_dir() / "judged_qa.yaml").read_text(encoding="utf-8"))
    for role, spec in (("actor", actor), ("judge", judge)):
        data["roles"][role] = {"agent": spec, "params": params.get(spec.partition(":")[0], {})}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def served_scenario(tmp_path, model, actor="served", **params):
    spec = f"openai:{model}"
    return write_scenario(tmp_path / "served.yaml", spec if actor == "served" else actor, spec, openai={**PARAMS, **params})


def embedded_scenario(tmp_path, model, actor="embedded"):
    spec = f"lm:{model}"
    lm = {"temperature": 0, "max_new_tokens": PARAMS["max_tokens"]}
    return write_scenario(tmp_path / "embedded.yaml", spec if actor == "embedded" else actor, spec, lm=lm)


def texts(log):
    return [(m.role, m.kind, m.text) for m in log]


def served_requests(server) -> int:
    """Chat completions the server has answered (its access log)."""
    return server.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')


def play_gym(path, actor, seed):
    """One episode through the Gymnasium face: the caller's ``actor`` in the learner's seat, the
    judge played inside ``step``; the log."""
    env = feedbackgym.make(path)
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(actor.act(env.unwrapped.episode.view("actor")))
        done = terminated or truncated
    ep = env.unwrapped.episode
    assert ep.done and ep.terminate_reason
    return ep.log


@pytest.mark.filterwarnings("ignore:.*not within the observation space")  # an untrained model's bytes
def test_two_served_seats_through_the_gymnasium_face(server, env_url, chat_model, tmp_path):
    path = served_scenario(tmp_path, chat_model, actor="learner")
    actor = ServedAgent.from_params(str(chat_model), **PARAMS)
    before = served_requests(server)
    first = [play_gym(path, actor, s) for s in SEEDS]
    served = sum(m.role in ("actor", "judge") for log in first for m in log)
    assert served >= 3 * len(SEEDS) and served_requests(server) - before == served  # every utterance came from the server
    assert [texts(log) for log in first] == [texts(play_gym(path, actor, s)) for s in SEEDS]  # same seed, same episode
    # greedy: the server says what the same model says embedded in both seats
    lm = LMAgent.from_pretrained(str(chat_model), temperature=0, max_new_tokens=PARAMS["max_tokens"])
    embedded = embedded_scenario(tmp_path, chat_model, actor="learner")
    assert [texts(log) for log in first] == [texts(play_gym(embedded, lm, s)) for s in SEEDS]


def test_two_served_seats_through_rollout(server, env_url, chat_model, tmp_path):
    path = served_scenario(tmp_path, chat_model, actor="learner")
    actor = ServedAgent.from_params(str(chat_model), **PARAMS, concurrency=3)
    runs = [rollout(actor, path, n_envs=3, seeds=SEEDS) for _ in range(2)]
    steps = [[(s.prompt, s.action, s.token_ids, s.logprobs) for s in t.steps] for t in runs[0]]
    assert steps == [[(s.prompt, s.action, s.token_ids, s.logprobs) for s in t.steps] for t in runs[1]]
    for t in runs[0]:
        assert t.steps and t.steps[-1].terminated | t.steps[-1].truncated
        for s in t.steps:
            chat = json.loads(s.prompt)  # the chat it was sent, as JSON
            assert chat[0]["role"] == "user" and chat[0]["content"].startswith("You are the actor")
            assert s.token_ids == [] and s.logprobs == []  # transformers serve returns no log-probs
    lm = LMAgent.from_pretrained(str(chat_model), temperature=0, max_new_tokens=PARAMS["max_tokens"])
    embedded = rollout(lm, embedded_scenario(tmp_path, chat_model, actor="learner"), n_envs=3, seeds=SEEDS)
    assert [[s.action for s in t.steps] for t in runs[0]] == [[s.action for s in t.steps] for t in embedded]


def test_generate_is_concurrent_in_view_order_with_usage(server, env_url, chat_model, tmp_path):
    sc = load_scenario(served_scenario(tmp_path, chat_model, actor="learner"))
    views = [Episode(sc, seed).view("actor") for seed in range(6)]
    agent = ServedAgent.from_params(str(chat_model), **PARAMS, concurrency=4)
    batched = agent.generate(views)
    alone = [agent.generate([v])[0] for v in views]
    assert [g.text for g in batched] == [g.text for g in alone]
    for g, v in zip(batched, views):
        assert json.loads(g.prompt) == view_chat(v)
        assert g.usage["prompt_tokens"] > 0 and 0 < g.usage["completion_tokens"] <= PARAMS["max_tokens"]
        assert g.usage["latency_s"] > 0
        assert "\n" not in g.text and g.text == g.text.strip()
    assert [u.text for u in agent.act_batch(views)] == [g.text for g in batched]
    agent.close()


def test_usage_goes_into_the_record_never_into_info(server, env_url, chat_model, tmp_path, capsys):
    """Every served turn's token counts and latency are in the record, beside the log (`run`,
    batched); the Gymnasium face's info carries none of it (it would break determinism)."""
    path = served_scenario(tmp_path, chat_model)
    rec = tmp_path / "u.jsonl"
    assert main(["run", path, "--episodes", "3", "--record", str(rec), "--quiet"]) == 0
    for r in read_records(rec):
        served = [m for m in r.messages if m.role in ("actor", "judge")]
        assert [(u["turn"], u["role"]) for u in r.usage] == [(m.turn, m.role) for m in served]
        assert all(u["prompt_tokens"] > 0 and u["completion_tokens"] > 0 and u["latency_s"] > 0 for u in r.usage)
    env = feedbackgym.make(served_scenario(tmp_path, chat_model, actor="learner"))
    _, info = env.reset(seed=0)
    _, _, _, _, info = env.step("B")
    assert env.unwrapped.episode.usage and "latency" not in repr(info) and "prompt_tokens" not in repr(info)


def test_seeds_come_from_each_views_generator_in_order():
    sc = load_scenario("judged_qa")
    agent = ServedAgent("m", ServedOptions(base_url="http://127.0.0.1:9/v1"))  # no request is sent
    views = [Episode(sc, seed).view("actor") for seed in (5, 6, 5)]
    seeds = agent.seeds(views)
    assert seeds[0] == seeds[2] != seeds[1]  # an episode's seed alone decides its request's seed
    assert agent.seeds([Episode(sc, 6).view("actor")]) == [seeds[1]]
    assert ServedAgent("m", ServedOptions(base_url="http://x/v1", seed=7)).seeds(views) == [7, 7, 7]
    assert ServedAgent("m", ServedOptions(base_url="http://x/v1", seed=None)).seeds(views) == [None] * 3


def test_bad_params_and_no_url_are_refused_clearly(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="temprature"):
        make_agent("openai:m", "actor", {"temprature": 0, "base_url": "http://x/v1"})
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        make_agent("openai:m", "actor", {})
    with pytest.raises(ValueError, match="seed"):
        ServedOptions(seed="random")
    with pytest.raises(ScenarioError, match="openai:MODEL"):
        load_scenario("judged_qa").with_roles(judge="openai:")


def test_server_killed_mid_episode_is_one_clear_line_and_nothing_half_recorded(chat_model, tmp_path, monkeypatch, capsys):
    """`feedbackgym run` with both seats served: the server dies at episode 1's second request
    (its judge); the command fails with one line naming the URL, and the record holds episode 0 only."""
    path = served_scenario(tmp_path, chat_model, max_retries=1)
    rec = tmp_path / "runs" / "served.jsonl"
    with Server(chat_model, log=tmp_path / "serve.log") as doomed:
        monkeypatch.setenv("OPENAI_BASE_URL", doomed.url)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        real, calls = ServedAgent.generate, []

        def generate(self, views):
            calls.append(len(views))
            if len(calls) == 5:  # episode 0 took 3 requests (actor, judge, actor)
                doomed.stop()
            return real(self, views)

        monkeypatch.setattr(ServedAgent, "generate", generate)
        code = main(["run", path, "--episodes", "4", "--record", str(rec), "--quiet", "--in-flight", "1"])
    err = capsys.readouterr().err
    assert code == 1 and len(calls) == 5
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert doomed.url in err and f"openai:{chat_model}" in err and "2 attempts" in err and "APIConnectionError" in err
    assert "1 finished episode recorded" in err
    records = read_records(rec)
    assert [r.seed for r in records] == [0] and records[0].terminate_reason
    with pytest.raises(ServedError, match=doomed.url):  # and straight from the agent, with the cause
        ServedAgent.from_params(str(chat_model), **PARAMS).act(Episode(load_scenario(path), 0).view("actor"))


def test_eval_against_no_server_is_one_clear_line(chat_model, tmp_path, monkeypatch, capsys):
    from servers import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    path = served_scenario(tmp_path, chat_model)
    assert main(["eval", path, "--actors", f"openai:{chat_model}", "--judges", "none", "--episodes", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("feedbackgym eval: served model") and url in err and len(err.strip().splitlines()) == 1, err

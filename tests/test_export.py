"""`feedbackgym export`: records of three task families in one file come back through each
format's own loader (datasets, pyarrow, TRL's conversational utilities, minari) with the same
content, under one schema; bad input is reported, not fatal."""

from __future__ import annotations

import json

import pytest

from feedbackgym import cli
from feedbackgym.agents.prompts import view_chat
from feedbackgym.envs.engine import Episode
from feedbackgym.records import read_records

pa = pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")
export = pytest.importorskip("feedbackgym.export")

FAMILIES = ("judged_qa", "guess_number", "twenty_questions")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A records file written by ``feedbackgym run``: 3 episodes of each of three task families."""
    path = tmp_path_factory.mktemp("records") / "mixed.jsonl"
    for scenario in FAMILIES:
        assert cli.main(["run", scenario, "--actor", "scripted:expert", "--episodes", "3", "--record", str(path), "--quiet"]) == 0
    return path


def run_export(*argv) -> int:
    return cli.main(["export", *map(str, argv)])


def test_hf_folder_loads_with_datasets_under_the_declared_features(mixed, tmp_path):
    out = tmp_path / "hf"
    assert run_export(mixed, "--to", "hf", out) == 0
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features == export.features()  # read from the card, not guessed from the rows
    by_hand = datasets.load_dataset("json", data_files=str(out / export.HF_DATA), features=export.features(), split="train", cache_dir=str(tmp_path / "cache2"))
    assert by_hand.to_list() == ds.to_list()
    records = read_records(mixed)
    assert len(ds) == len(records) and sorted(set(ds["family"])) == sorted(FAMILIES)
    for row, rec in zip(ds, records):
        assert json.loads(row["task_params"]) == rec.scenario.task.params  # shapes differ by family: JSON text
        assert json.loads(row["scenario_json"]) == rec.scenario.model_dump(mode="json")
        assert [(m["role"], m["kind"], m["text"]) for m in row["messages"]] == [(m.role, m.kind, m.text) for m in rec.messages]
        assert [json.loads(m["labels"]) for m in row["messages"]] == [json.loads(json.dumps(dict(m.labels))) for m in rec.messages]
        assert {r["role"]: r["value"] for r in row["returns"]} == rec.returns
        assert json.loads(row["metrics"]) == rec.metrics and row["success"] == rec.metrics["success"]
        assert row["seed"] == rec.seed and row["line"] == rec.line
        prov = row["provenance"]  # what made the episode: the package version, the scenario hash, each seat
        assert prov["feedbackgym"] == rec.provenance["feedbackgym"] and prov["scenario_sha256"] == rec.provenance["scenario_sha256"]
        assert {s["role"]: s["agent"] for s in prov["seats"]} == {r: s.agent for r, s in rec.scenario.roles.items()}


def test_parquet_has_the_schema_and_the_same_rows_as_hf(mixed, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "episodes.parquet"
    assert run_export(mixed, "--to", "parquet", out) == 0
    table = pq.read_table(out)
    assert table.schema.equals(export.arrow_schema()) and table.num_rows == 9
    assert run_export(mixed, "--to", "hf", tmp_path / "hf") == 0
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    hf = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache2"))
    assert ds.to_list() == hf.to_list() == table.to_pylist()


def test_one_family_alone_gets_the_same_schema(mixed, tmp_path):
    """A file of one family and a file of another load under the same features (no column
    typed by what one family happens to hold: guess_number has no feedback scores, twenty_questions' answers are text)."""
    rows = [export.episode_row(r) for r in read_records(mixed)]
    for family in FAMILIES:
        table = pa.Table.from_pylist([r for r in rows if r["family"] == family], schema=export.arrow_schema())
        assert table.num_rows == 3


def test_chat_is_each_seats_view_chat_and_what_it_said(mixed, tmp_path):
    out = tmp_path / "chat.jsonl"
    assert run_export(mixed, "--to", "chat", out) == 0
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    records = read_records(mixed)
    assert len(ds) == sum(m.role != "env" for r in records for m in r.messages)  # one per seat turn
    rec = records[0]  # judged_qa: actor, judge, actor
    first = [row for row in ds if row["line"] == rec.line]
    assert [row["seat"] for row in first] == [m.role for m in rec.messages if m.role != "env"]
    assert first[0]["messages"][:-1] == view_chat(Episode(rec.scenario, rec.seed).view("actor"))  # what an LM seat is prompted with
    assert [row["messages"][-1] for row in first] == [{"role": "assistant", "content": m.text} for m in rec.messages if m.role != "env"]
    assert first[1]["messages"][0]["content"].startswith("You are the judge") and "Known only to you" in first[1]["messages"][0]["content"]


def chat_tokenizer():
    """A word-level tokenizer with `servers.CHAT_TEMPLATE` (nothing trained, nothing downloaded)."""
    from servers import CHAT_TEMPLATE
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>", pad_token="</s>", chat_template=CHAT_TEMPLATE)


def test_chat_loads_in_trls_conversational_format(mixed, tmp_path):
    trl_data = pytest.importorskip("trl.data_utils")
    out = tmp_path / "chat.jsonl"
    assert run_export(mixed, "--to", "chat", out, "--seat", "actor", "--per", "episode") == 0
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 9 and set(ds["seat"]) == {"actor"}  # one conversation per episode and seat
    tokenizer = chat_tokenizer()
    for example, rec in zip(ds, read_records(mixed)):
        assert trl_data.is_conversational(example)  # what SFTTrainer asks before it applies the chat template
        said = [m.text for m in rec.messages if m.role == "actor"]
        assert [m["content"] for m in example["messages"] if m["role"] == "assistant"] == said
        text = trl_data.apply_chat_template({"messages": example["messages"]}, tokenizer)["text"]
        assert text.endswith(f"assistant: {said[-1]}\n")


@pytest.mark.slow
def test_sft_trainer_trains_on_the_chat_export(mixed, tmp_path):
    """TRL's SFTTrainer takes the export as it is (conversational "messages") and steps on it."""
    pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from servers import save_chat_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "chat.jsonl"
    assert run_export(mixed, "--to", "chat", out) == 0
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    folder = save_chat_lm(tmp_path / "lm", [m["content"] for row in ds.select(range(20)) for m in row["messages"]], context=2048)
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=2, max_length=2048, report_to=[],
        save_strategy="no", logging_steps=1, use_cpu=True, dataset_num_proc=None,
    )  # fmt: skip
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder), args=config, train_dataset=ds.select_columns(["messages"]),
        processing_class=AutoTokenizer.from_pretrained(folder),
    )  # fmt: skip
    assert "input_ids" in trainer.train_dataset.column_names
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_minari_dataset_loads_and_replays(mixed, tmp_path, minari_home, capsys):
    import minari

    path = tmp_path / "gn.jsonl"
    lines = mixed.read_text(encoding="utf-8").splitlines()
    gn = [line for line in lines if '"name":"guess_number"' in line]
    bad = json.loads(gn[0])
    bad["messages"][0]["text"] = "fifty"  # not one of the candidates: the episode is skipped, with why
    path.write_text("\n".join([json.dumps(bad), *gn[1:], lines[0]]) + "\n", encoding="utf-8")
    assert run_export(path, "--to", "minari", "feedbackgym/guess_number/expert-v0") == 0
    err = capsys.readouterr().err
    assert f"{path}:1: episode skipped: turn 0: the actor said 'fifty', which is not one of the 100 candidates" in err
    assert f"{path}:4: episode skipped: its scenario (judged_qa, seat actor) differs from line 2's" in err
    ds = minari.load_dataset("feedbackgym/guess_number/expert-v0")
    assert (minari_home / "feedbackgym/guess_number/expert-v0").is_dir()
    records = read_records(path)[1:3]
    assert ds.total_episodes == 2 and ds.action_space.n == 100
    env = ds.recover_environment()  # the candidate view, from the spec kept in the dataset
    for ep, rec in zip(ds.iterate_episodes(), records):
        said = [m.text for m in rec.messages if m.role == "actor"]
        cands = [json.loads(c) for c in ep.infos["candidates"]]
        assert [cands[t][a] for t, a in enumerate(ep.actions)] == said
        assert float(ep.rewards.sum()) == rec.returns["actor"] and bool(ep.terminations[-1])
        env.reset(seed=rec.seed)
        rewards = [env.step(int(a))[1] for a in ep.actions]
        assert rewards == list(ep.rewards)


def test_minari_maps_a_paraphrase_to_the_candidate_of_the_same_move(tmp_path, minari_home):
    """twenty_questions' evidence weigher asks "Is it able to fly?", whose candidate is another
    phrasing of the same question: the action is that candidate, and infos["said"] keeps the words."""
    import minari

    path = tmp_path / "tq.jsonl"
    assert cli.main(["run", "twenty_questions", "--actor", "scripted:evidence_weigher", "--episodes", "3", "--record", str(path), "--quiet"]) == 0
    assert run_export(path, "--to", "minari", "feedbackgym/tq-v0") == 0
    ds = minari.load_dataset("feedbackgym/tq-v0")
    assert ds.total_episodes == 3
    env = ds.recover_environment()
    paraphrased = 0
    for ep, rec in zip(ds.iterate_episodes(), read_records(path)):
        said = [m.text for m in rec.messages if m.role == "actor"]
        assert list(ep.infos["said"][1:]) == said
        env.reset(seed=rec.seed)
        instance = env.unwrapped.episode.instance
        for t, a in enumerate(ep.actions):
            chosen = json.loads(ep.infos["candidates"][t])[a]
            assert instance.parse("actor", chosen)[:3] == instance.parse("actor", said[t])[:3]
            paraphrased += chosen != said[t]
        assert [env.step(int(a))[1] for a in ep.actions] == list(ep.rewards)
    assert paraphrased > 0


def test_a_malformed_minari_id_is_refused_before_anything_is_written(mixed, minari_home, capsys):
    assert run_export(mixed, "--to", "minari", "x/qa-v0") == 2
    assert "'x/qa-v0' is not a Minari dataset id" in capsys.readouterr().err
    assert run_export(mixed, "--to", "minari", "feedbackgym/qa-v0", "--seat", "actor", "--seat", "judge") == 2
    assert "a Minari dataset has one learner seat" in capsys.readouterr().err
    assert not minari_home.exists() or not any(minari_home.rglob("*-v0"))


def test_minari_with_hashing_embeddings_stores_arrays(mixed, minari_home):
    import minari
    import numpy as np

    assert run_export(mixed, "--to", "minari", "feedbackgym/qa-v0", "--embed", "hashing", "--embed-dim", "16") == 0
    ds = minari.load_dataset("feedbackgym/qa-v0")
    ep = next(ds.iterate_episodes())
    assert ds.total_episodes == 3 and ep.observations["transcript"].shape == (len(ep.actions) + 1, 16)
    assert np.isfinite(ep.observations["feedback"]).all()


def test_a_corrupt_line_is_reported_with_its_number_and_skipped(mixed, tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    lines = mixed.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], '{"schema": 1, "seed": 0', *lines[1:3]]) + "\n", encoding="utf-8")
    assert run_export(path, "--to", "parquet", tmp_path / "o.parquet") == 0
    captured = capsys.readouterr()
    assert f"{path}:2: skipped: not JSON" in captured.err
    assert "wrote 3 episodes" in captured.out and "1 unreadable line(s)" in captured.out
    assert [r["line"] for r in pytest.importorskip("pyarrow.parquet").read_table(tmp_path / "o.parquet").to_pylist()] == [1, 3, 4]


def test_unknown_format_is_a_clear_error(mixed, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_export(mixed, "--to", "csv", tmp_path / "o.csv")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --to: invalid choice: 'csv'" in err and all(f in err for f in export.FORMATS)
    with pytest.raises(export.ExportError, match="unknown format 'csv': expected one of hf, parquet, chat, minari"):
        export.export(export.Args(str(mixed), "csv", str(tmp_path / "o.csv")))
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("to,name", [("parquet", "o.parquet"), ("chat", "o.jsonl"), ("hf", "hf")])
def test_existing_out_is_refused_unless_force(mixed, tmp_path, capsys, to, name):
    out = tmp_path / name
    assert run_export(mixed, "--to", to, out) == 0
    stamp = sorted(p.stat().st_mtime_ns for p in ([out] if out.is_file() else out.iterdir()))
    assert run_export(mixed, "--to", to, out) == 2
    assert "pass --force to replace" in capsys.readouterr().err
    assert stamp == sorted(p.stat().st_mtime_ns for p in ([out] if out.is_file() else out.iterdir()))
    assert run_export(mixed, "--to", to, out, "--force") == 0


def test_existing_minari_dataset_is_refused_unless_force(mixed, minari_home, capsys):
    assert run_export(mixed, "--to", "minari", "feedbackgym/qa-v0") == 0
    assert run_export(mixed, "--to", "minari", "feedbackgym/qa-v0") == 2
    assert "the Minari dataset feedbackgym/qa-v0 exists: pass --force" in capsys.readouterr().err
    assert run_export(mixed, "--to", "minari", "feedbackgym/qa-v0", "--force") == 0


def test_a_lone_surrogate_survives_as_its_escape(mixed, tmp_path):
    """A Text action may carry a lone surrogate, and records keep it; Arrow strings are UTF-8, so
    the exported text holds its escape, and the JSON text fields the JSON escape (read back as it was)."""
    from feedbackgym.core import Message
    from feedbackgym.records import RecordWriter

    rec = read_records(mixed)[3]  # guess_number
    m = rec.messages[0]
    rec.messages[0] = Message(0, m.role, "50 \udc80", m.kind, None, {**m.labels, "note": "\udc80"})
    with RecordWriter(tmp_path / "r.jsonl") as w:
        w.write(rec)
    assert run_export(tmp_path / "r.jsonl", "--to", "hf", tmp_path / "hf") == 0
    assert run_export(tmp_path / "r.jsonl", "--to", "parquet", tmp_path / "r.parquet") == 0
    for ds in (
        datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache")),
        datasets.load_dataset("parquet", data_files=str(tmp_path / "r.parquet"), split="train", cache_dir=str(tmp_path / "cache2")),
    ):
        first = ds[0]["messages"][0]
        assert first["text"] == "50 \\udc80" and json.loads(first["labels"])["note"] == "\udc80"

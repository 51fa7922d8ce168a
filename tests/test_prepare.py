"""`prepare` and `train --data`: token files from local sources (txt, jsonl, json, parquet, a folder, a named
dataset pointed at a local file), the val split, memmap batches equal to in-memory ones, resume after an
interrupted prepare, and one clear line for each bad input. Every file is written here; nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from minigpt import TrainConfig
from minigpt import prepare as P
from minigpt import sources as S
from minigpt.__main__ import main
from minigpt.data import Batches, DataError, GPT2Tokenizer, load_corpus, load_data, split_index
from minigpt.prepared import PreparedBatches, load_prepared, read_meta

EOT = 50256
DOCS = ["First document: the quick brown fox.", "Second one, with\nnew lines\n\nand a blank line.",
        "Ünïcödé and emoji 🙂 survive the round trip.", "Fourth: 12345 numbers 678."] * 20


@pytest.fixture(scope="module")
def gpt2() -> GPT2Tokenizer:
    return GPT2Tokenizer()


def write_jsonl(path: Path, docs, field="text") -> Path:
    path.write_text("".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)), encoding="utf-8")
    return path


def run(source, out, **kw):
    kw.setdefault("num_proc", 1)
    kw.setdefault("progress", False)
    logs: list[str] = []
    result = P.prepare(str(source), out, log=logs.append, **kw)
    return result, logs


def tokens(folder: Path) -> np.ndarray:
    meta = read_meta(folder)
    return np.concatenate([np.fromfile(folder / f, dtype=meta["dtype"]) for f in ("train.bin", "val.bin")])


def expected_gpt2(tok, docs) -> list[int]:
    return [i for d in docs for i in (*tok.encode(d), EOT)]


# ------------------------------------------------------------------------------------- sources -> tokens


def test_jsonl_token_counts_round_trip_and_meta(tmp_path, gpt2):
    res, logs = run(write_jsonl(tmp_path / "c.jsonl", DOCS), tmp_path / "d", val_fraction=0.25)
    ids = tokens(tmp_path / "d")
    assert ids.tolist() == expected_gpt2(gpt2, DOCS)  # each document, then <|endoftext|>
    assert gpt2.decode(ids) == "".join(d + "<|endoftext|>" for d in DOCS)
    meta = res.meta
    assert meta["documents"] == len(DOCS) and meta["tokens"]["total"] == len(ids)
    assert meta["tokenizer"]["name"] == "gpt2" and meta["vocab_size"] == 50257 and meta["dtype"] == "uint16"
    assert meta["tokens"]["train"] == split_index(len(ids), 0.25) == meta["files"]["train.bin"]["tokens"]
    assert res.status == "prepared" and any(line.startswith("starting") for line in logs)
    assert not (tmp_path / ".d.partial").exists()  # renamed into place


def test_txt_json_parquet_and_folder_give_the_same_documents(tmp_path, gpt2):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text(DOCS[1], encoding="utf-8")  # a .txt file is one document
    (src / "b.json").write_text(json.dumps([{"text": d} for d in DOCS[:3]]), encoding="utf-8")
    pq.write_table(pa.table({"text": DOCS[3:6], "url": ["u"] * 3}), src / "c.parquet")
    (src / "notes.md").write_text("ignored: not a corpus suffix")
    run(src, tmp_path / "d", val_fraction=0.2)
    assert tokens(tmp_path / "d").tolist() == expected_gpt2(gpt2, [DOCS[1], *DOCS[:3], *DOCS[3:6]])


def test_large_txt_is_cut_where_gpt2_cuts_anyway(monkeypatch, tmp_path, gpt2):
    """A .txt file is encoded in pieces cut at safe line starts: the ids equal encoding the whole text."""
    text = load_corpus()[:60_000]
    monkeypatch.setattr(S, "PIECE_CHARS", 2_000)
    monkeypatch.setattr(S, "_READ_BYTES", 1_000)
    pieces = list(S._txt_pieces(_write(tmp_path / "s.txt", text)))
    assert len(pieces) > 20 and "".join(t for t, _ in pieces) == text and [last for _, last in pieces][-1]
    assert [i for t, _ in pieces for i in gpt2.encode(t)] == gpt2.encode(text)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_char_tokenizer_round_trip(tmp_path):
    res, _ = run(write_jsonl(tmp_path / "c.jsonl", DOCS), tmp_path / "d", tokenizer="char", val_fraction=0.1)
    tok, batches = load_prepared(tmp_path / "d", block_size=8, tokenizer="char")
    assert tok.decode(tokens(tmp_path / "d")) == "".join(d + P.CHAR_EOT for d in DOCS)
    assert tok.vocab_size == len(set("".join(DOCS)) | {P.CHAR_EOT}) == res.meta["vocab_size"]


def test_max_tokens_and_the_automatic_val_split(tmp_path, gpt2):
    res, _ = run(write_jsonl(tmp_path / "c.jsonl", DOCS), tmp_path / "d", max_tokens=301)
    assert res.meta["tokens"]["total"] == 301
    assert tokens(tmp_path / "d").tolist() == expected_gpt2(gpt2, DOCS)[:301]
    assert res.meta["tokens"]["val"] == 301 - split_index(301, P.AUTO_VAL_FRACTION)  # 10% below 5M tokens


def test_pool_gives_the_same_tokens_as_one_process(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "BATCH_CHARS", 300)  # many tasks, so order across workers matters
    src = write_jsonl(tmp_path / "c.jsonl", DOCS)
    run(src, tmp_path / "one", num_proc=1, val_fraction=0.1)
    run(src, tmp_path / "two", num_proc=2, val_fraction=0.1)
    assert read_meta(tmp_path / "one")["files"] == read_meta(tmp_path / "two")["files"]


def test_named_dataset_through_datasets_on_a_local_file(monkeypatch, tmp_path, gpt2):
    pytest.importorskip("datasets")
    src = write_jsonl(tmp_path / "c.jsonl", DOCS[:8])
    monkeypatch.setitem(S.NAMED_DATASETS, "fineweb-edu", {"path": "json", "data_files": str(src), "split": "train"})
    res, _ = run("fineweb-edu", tmp_path / "d", val_fraction=0.2)
    assert tokens(tmp_path / "d").tolist() == expected_gpt2(gpt2, DOCS[:8])
    assert res.meta["source"] == "fineweb-edu" and res.meta["documents"] == 8


# ---------------------------------------------------------------------------------------------- batches


def test_memmap_batches_equal_in_memory_batches(tmp_path):
    run(write_jsonl(tmp_path / "c.jsonl", DOCS * 3), tmp_path / "d", val_fraction=0.3)
    tok, mm = load_prepared(tmp_path / "d", block_size=16, tokenizer="gpt2")
    assert isinstance(mm, PreparedBatches) and isinstance(mm.train, np.memmap) and isinstance(mm.val, np.memmap)
    mem = Batches(tokens(tmp_path / "d"), block_size=16, val_fraction=0.3)
    assert len(mem.train) == len(mm.train) and len(mem.val) == len(mm.val)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(5):
        for a, b in zip(mm.sample("train", 4, g1), mem.sample("train", 4, g2), strict=True):
            assert torch.equal(a, b)
    for (x1, y1), (x2, y2) in zip(mm.val_batches(3, 4), mem.val_batches(3, 4), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_load_data_reads_a_prepared_dir_and_checks_the_tokenizer(tmp_path):
    run(write_jsonl(tmp_path / "c.jsonl", DOCS), tmp_path / "d", val_fraction=0.2)
    tok, batches = load_data(TrainConfig(data=str(tmp_path / "d"), tokenizer="gpt2"), block_size=8)
    assert tok.vocab_size == 50257 and isinstance(batches.train, np.memmap)
    with pytest.raises(DataError, match="prepared with tokenizer 'gpt2'"):
        load_data(TrainConfig(data=str(tmp_path / "d"), tokenizer="char"), block_size=8)


# ----------------------------------------------------------------------------------------------- resume


def test_interrupted_prepare_resumes_and_ends_identical(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "BATCH_CHARS", 200)
    src = write_jsonl(tmp_path / "c.jsonl", DOCS)
    run(src, tmp_path / "clean", val_fraction=0.1)
    calls = {"n": 0}
    real = P._encode

    def dies_on_third_batch(pieces):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(pieces)

    monkeypatch.setattr(P, "_encode", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run(src, tmp_path / "d", val_fraction=0.1)
    assert (tmp_path / ".d.partial").is_dir() and not (tmp_path / "d").exists()  # never a half-made DIR
    monkeypatch.setattr(P, "_encode", real)
    res, logs = run(src, tmp_path / "d", val_fraction=0.1)
    assert res.status == "resumed" and any("resuming" in line and "documents" in line for line in logs)
    assert read_meta(tmp_path / "d")["files"] == read_meta(tmp_path / "clean")["files"]


def test_partial_from_another_job_starts_clean(monkeypatch, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", DOCS)
    monkeypatch.setattr(P, "_encode", lambda pieces: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run(src, tmp_path / "d", tokenizer="char")
    monkeypatch.undo()
    res, logs = run(src, tmp_path / "d", val_fraction=0.1)
    assert res.status == "prepared" and any("starting clean" in line and "tokenizer" in line for line in logs)


def test_rerun_is_a_no_op_and_other_settings_need_overwrite(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", DOCS)
    run(src, tmp_path / "d", val_fraction=0.1)
    res, logs = run(src, tmp_path / "d", val_fraction=0.1)
    assert res.status == "unchanged" and "nothing to do" in logs[-1]
    with pytest.raises(DataError, match="another tokenizer.*--overwrite"):
        run(src, tmp_path / "d", val_fraction=0.1, tokenizer="char")
    res, _ = run(src, tmp_path / "d", val_fraction=0.1, tokenizer="char", overwrite=True)
    assert read_meta(tmp_path / "d")["tokenizer"]["name"] == "char"


# ----------------------------------------------------------------------------------------- CLI, errors


def error_line(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_acceptance_prepare_then_train(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "tests-made.jsonl", DOCS * 5)
    assert main(["prepare", "tests-made.jsonl", "--out", "d", "--progress", "false"]) == 0
    tiny = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--block_size", "32", "--batch_size", "2",
            "--eval_batches", "1", "--progress", "false"]
    assert main(["train", "--data", "d", "--preset", "cpu-tiny", "--steps", "2", "--out", "r", *tiny]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["tokenizer"] == {"name": "gpt2", "vocab_size": 50257} and cfg["train"]["tokenizer"] == "gpt2"
    capsys.readouterr()
    err = error_line(capsys, "train", "--data", "d", "--preset", "cpu-tiny", "--tokenizer", "char", "--out", "r2")
    assert "prepared with tokenizer 'gpt2'" in err
    # resuming a checkpoint made on other data: the tokenizer differs
    assert main(["train", "--preset", "cpu-tiny", "--steps", "1", "--out", "c", *tiny]) == 0
    capsys.readouterr()
    err = error_line(capsys, "train", "--data", "d", "--preset", "cpu-tiny", "--steps", "2", "--out", "c",
                     "--resume", *tiny)
    assert "tokenizer: 'char' in checkpoint vs 'gpt2' now" in err


@pytest.mark.parametrize("case, expect", [
    ("unknown name", "unknown dataset name 'finewebedu'; choose one of fineweb-edu, openwebtext"),
    ("offline", "no network for the named dataset 'fineweb-edu'"),
    ("empty file", "is empty: it holds no text"),
    ("bad utf-8", "is not valid UTF-8"),
    ("no text field", "has no 'text' field (its fields: body, id)"),
    ("no text column", "has no 'text' column (its columns: body)"),
    ("bad suffix", "prepare reads .txt, .jsonl, .json, .parquet files"),
    ("empty folder", "holds no .txt, .jsonl, .json, .parquet files"),
])
def test_bad_sources_one_line(case, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = {"unknown name": "finewebedu", "offline": "fineweb-edu"}.get(case, "x")
    if case == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    elif case == "empty file":
        source = str(_write(tmp_path / "e.jsonl", "\n\n"))
    elif case == "bad utf-8":
        source = "b.txt"
        (tmp_path / source).write_bytes(b"caf\xe9 latin-1")
    elif case == "no text field":
        source = str(write_jsonl(tmp_path / "f.jsonl", ["x"], field="body"))
    elif case == "no text column":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        source = "p.parquet"
        pq.write_table(pa.table({"body": ["x"]}), tmp_path / source)
    elif case == "bad suffix":
        source = str(_write(tmp_path / "c.csv", "text\nx\n"))
    elif case == "empty folder":
        (tmp_path / "empty").mkdir()
        source = "empty"
    err = error_line(capsys, "prepare", source, "--out", "d", "--progress", "false")
    assert expect in err
    if case == "offline":
        assert "to use local files instead: python -m minigpt prepare" in err


def test_no_route_to_the_hub_fails_fast(monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(111, "Connection refused")

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(S.socket, "create_connection", refused)
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="cannot connect to huggingface.co:443.*local files"):
        next(S.open_source("openwebtext").pieces())


@pytest.mark.parametrize("damage, expect", [
    ("odd byte", "not a whole number of uint16 token ids"),
    ("flipped", "sha256"),
    ("short", "holds 1"),
    ("no meta", "is not a prepared corpus (no meta.json)"),
])
def test_corrupt_dir_one_line(damage, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(write_jsonl(tmp_path / "c.jsonl", DOCS), tmp_path / "d", val_fraction=0.1)
    val = tmp_path / "d" / "val.bin"
    raw = bytearray(val.read_bytes())
    if damage == "odd byte":
        val.write_bytes(bytes(raw) + b"\0")
    elif damage == "flipped":
        raw[0] ^= 1
        val.write_bytes(bytes(raw))
    elif damage == "short":
        val.write_bytes(bytes(raw[:2]))
    else:
        (tmp_path / "d" / "meta.json").unlink()
    err = error_line(capsys, "train", "--data", "d", "--preset", "cpu-tiny", "--steps", "1", "--out", "r")
    assert expect in err and ("val.bin" in err or damage == "no meta")


def test_gpu_web_needs_data(capsys):
    err = error_line(capsys, "train", "--preset", "gpu-web", "--steps", "1")
    assert "--data DIR" in err and "prepare fineweb-edu" in err


def test_compare_trains_on_a_prepared_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(write_jsonl(tmp_path / "c.jsonl", DOCS * 5), tmp_path / "d", tokenizer="char", val_fraction=0.2)
    assert main(["compare", "--preset", "cpu-tiny", "--data", "d", "--variants", "pre_ln", "--steps", "1",
                 "--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--block_size", "16", "--batch_size", "2",
                 "--eval_batches", "1", "--out", "cmp", "--progress", "false"]) == 0
    run_cfg = json.loads((tmp_path / "cmp" / "pre_ln" / "config.json").read_text())
    assert run_cfg["train"]["data"] == "d" and run_cfg["train"]["tokenizer"] == "char"
    assert run_cfg["model"]["vocab_size"] == read_meta("d")["vocab_size"] == len(set("".join(DOCS))) + 1

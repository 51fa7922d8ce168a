"""Tests for minigpt.data: corpus, tokenizers (round trips on the whole corpus), token cache, batches.

The corpus is encoded once per tokenizer (module-scoped fixtures); every test that writes a cache writes it
under a temporary folder, never into the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from minigpt import data as D
from minigpt import data_files, tokenizers
from minigpt.config import TrainConfig
from minigpt.data import (
    Batches,
    CharTokenizer,
    DataError,
    GPT2Tokenizer,
    build_tokenizer,
    encode_corpus,
    load_corpus,
    load_data,
    resolve_data_dir,
    tokenizer_from_dict,
)

N_CHARS = 84
N_GPT2_TOKENS = 1_565_278
N_COMPACT_VOCAB = 19_378
REPO_DATA = Path(__file__).resolve().parent.parent / "data"


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def isolated_env(tmp_path_factory):
    """No test may pick up a developer's $MINIGPT_DATA_DIR or write the default cache into the repo."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(D.DATA_DIR_ENV, raising=False)
        mp.setenv(D.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("default-cache")))
        yield


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("token-cache")


@pytest.fixture(scope="module")
def corpus() -> str:
    return load_corpus()


@pytest.fixture(scope="module")
def char_tok(corpus) -> CharTokenizer:
    return build_tokenizer("char", corpus)


@pytest.fixture(scope="module")
def gpt2_compact(corpus, cache_dir) -> GPT2Tokenizer:
    # encodes the corpus once with full GPT-2 BPE and caches it in cache_dir (gpt2_tokens reuses that)
    return build_tokenizer("gpt2", corpus, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def gpt2_full(corpus) -> GPT2Tokenizer:
    return build_tokenizer("gpt2", corpus, compact_vocab=False)


@pytest.fixture(scope="module")
def char_tokens(char_tok, corpus, cache_dir) -> np.ndarray:
    return encode_corpus(char_tok, corpus, cache_dir)


@pytest.fixture(scope="module")
def gpt2_tokens(gpt2_compact, gpt2_full, corpus, cache_dir) -> np.ndarray:
    return encode_corpus(gpt2_full, corpus, cache_dir)


@pytest.fixture(scope="module")
def compact_tokens(gpt2_compact, corpus, cache_dir) -> np.ndarray:
    return encode_corpus(gpt2_compact, corpus, cache_dir)


def write_corpus(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shakespeare.txt").write_text(text, encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------------------------- corpus


def test_corpus_loads_byte_exact(corpus):
    assert corpus.encode("utf-8") == (REPO_DATA / "shakespeare.txt").read_bytes()
    assert len(corpus) == 5_056_502


def test_missing_corpus_raises(tmp_path):
    with pytest.raises(DataError, match=r"could not find shakespeare\.txt.*" + str(tmp_path.name)):
        load_corpus(tmp_path)


@pytest.mark.parametrize("text", ["", "\n \n"])
def test_empty_corpus_raises(tmp_path, text):
    write_corpus(tmp_path, text)
    with pytest.raises(DataError, match=r"shakespeare\.txt is empty"):
        load_corpus(tmp_path)


def _unreadable(monkeypatch, path: Path) -> None:
    """Make `path` fail to read as an unreadable file does (chmod 000 does not stop root, so patch)."""
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_unreadable_corpus_raises(tmp_path, monkeypatch):
    write_corpus(tmp_path, "to be or not to be\n")
    _unreadable(monkeypatch, tmp_path / "shakespeare.txt")
    with pytest.raises(DataError, match=r"cannot read corpus .*shakespeare\.txt: .*Permission denied"):
        load_corpus(tmp_path)


def test_unreadable_gpt2_ranks_raise(tmp_path, monkeypatch):
    (tmp_path / "gpt2.tiktoken").write_bytes((REPO_DATA / "gpt2.tiktoken").read_bytes())
    _unreadable(monkeypatch, tmp_path / "gpt2.tiktoken")
    with pytest.raises(DataError, match=r"cannot read the GPT-2 BPE ranks .*gpt2\.tiktoken: .*Permission denied"):
        GPT2Tokenizer(tmp_path)


def test_corpus_not_utf8_raises(tmp_path):
    (tmp_path / "shakespeare.txt").write_bytes(b"to be or \xff not")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_corpus(tmp_path)


# ------------------------------------------------------------------------------------- resolve_data_dir


def test_resolve_data_dir_defaults_to_repo_data():
    assert resolve_data_dir() == REPO_DATA


def test_resolve_data_dir_honours_env(monkeypatch, tmp_path):
    write_corpus(tmp_path / "mine", "hello world\n")
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(tmp_path / "mine"))
    assert resolve_data_dir() == tmp_path / "mine"
    assert load_corpus() == "hello world\n"
    # an explicit path still wins over the environment
    assert resolve_data_dir(REPO_DATA) == REPO_DATA


def test_resolve_data_dir_env_without_corpus_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"MINIGPT_DATA_DIR"):
        resolve_data_dir()


def test_resolve_data_dir_lists_places_when_nothing_found(monkeypatch, tmp_path):
    places = (tmp_path / "repo-data", tmp_path / "package-data")
    monkeypatch.setattr(data_files, "_DEFAULT_DATA_DIRS", places)
    with pytest.raises(DataError) as info:
        resolve_data_dir()
    message = str(info.value)
    assert "shakespeare.txt" in message and "MINIGPT_DATA_DIR" in message
    for place in places:
        assert str(place) in message
    # the second built-in place is used when the first is empty
    write_corpus(places[1], "x\n")
    assert resolve_data_dir() == places[1]


# ------------------------------------------------------------------------------------------ char tokenizer


def test_char_vocab_is_84(char_tok, corpus):
    assert char_tok.vocab_size == N_CHARS
    assert char_tok.chars == "".join(sorted(set(corpus)))


def test_char_round_trip_whole_corpus(char_tok, corpus):
    ids = char_tok.encode(corpus)
    assert len(ids) == len(corpus)
    assert max(ids) == N_CHARS - 1 and min(ids) == 0
    assert char_tok.decode(ids) == corpus


def test_char_ids_follow_sorted_characters(char_tok):
    assert char_tok.encode("\n A") == [0, 1, char_tok.chars.index("A")]


def test_char_unknown_character_raises(char_tok):
    with pytest.raises(DataError, match=r"'€'.*position 3"):
        char_tok.encode("abc€")


@pytest.mark.parametrize("bad", [[N_CHARS], [-1], [0, 1, 1000]])
def test_char_decode_out_of_range_raises(char_tok, bad):
    with pytest.raises(DataError, match="out of range"):
        char_tok.decode(bad)


# ------------------------------------------------------------------------------------------ gpt2 tokenizer


def test_gpt2_ranks_load_offline_with_hash_check(monkeypatch, tmp_path):
    """Build the Encoding from scratch with the network cut: the ranks we parse are exactly the ones
    tiktoken's own loader reads from the same file, and loading writes nothing (tiktoken's loader would copy
    the file into its temp-folder cache)."""
    import tiktoken.load

    assert hashlib.sha256((REPO_DATA / "gpt2.tiktoken").read_bytes()).hexdigest() == data_files.GPT2_RANKS_SHA256

    def no_network(*args, **kwargs):
        raise AssertionError("minigpt.data tried to open a network socket")

    def no_tiktoken_loader(*args, **kwargs):
        raise AssertionError("minigpt.data went through tiktoken's caching loader")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(tiktoken.load, "load_tiktoken_bpe", no_tiktoken_loader)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_tiktoken_loader)
    monkeypatch.setattr(tokenizers, "_GPT2_ENCODING", None)
    tok = GPT2Tokenizer()
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's own ids
    assert tok.decode([50256]) == "<|endoftext|>"
    monkeypatch.undo()

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    reference = tiktoken.load.load_tiktoken_bpe(str(REPO_DATA / "gpt2.tiktoken"), data_files.GPT2_RANKS_SHA256)
    assert tokenizers._gpt2_encoding(None)._mergeable_ranks == reference


def test_gpt2_wrong_hash_raises(tmp_path):
    damaged = bytearray((REPO_DATA / "gpt2.tiktoken").read_bytes())
    damaged[1000] = ord("A") if damaged[1000] != ord("A") else ord("B")
    (tmp_path / "gpt2.tiktoken").write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"gpt2\.tiktoken have the wrong sha256 .* expected 306cd27f"):
        GPT2Tokenizer(tmp_path)


def test_gpt2_missing_ranks_raises(tmp_path):
    with pytest.raises(DataError, match=r"could not find gpt2\.tiktoken.*" + str(tmp_path.name)):
        GPT2Tokenizer(tmp_path)


def test_gpt2_unparsable_ranks_become_data_error(monkeypatch, tmp_path):
    """A ranks file that passes the hash check (here: the expected hash is patched to match it) but is not
    `<base64> <rank>` lines gives a DataError naming the file, not a bare ValueError."""
    bad = b"not base64 at all\n"
    (tmp_path / "gpt2.tiktoken").write_bytes(bad)
    monkeypatch.setattr(tokenizers, "GPT2_RANKS_SHA256", hashlib.sha256(bad).hexdigest())
    monkeypatch.setattr(tokenizers, "_GPT2_ENCODING", None)
    with pytest.raises(DataError, match=r"could not parse the GPT-2 BPE ranks .*gpt2\.tiktoken"):
        GPT2Tokenizer(tmp_path)


def test_gpt2_full_round_trip_whole_corpus(gpt2_full, gpt2_tokens, corpus):
    assert gpt2_full.vocab_size == 50257 and not gpt2_full.compact
    ids = gpt2_full.encode(corpus)
    assert len(ids) == N_GPT2_TOKENS
    assert np.array_equal(np.asarray(ids), gpt2_tokens)
    assert gpt2_full.decode(ids) == corpus


def test_gpt2_compact_vocab_size_and_length(gpt2_compact, compact_tokens, gpt2_tokens):
    assert gpt2_compact.compact
    assert gpt2_compact.vocab_size == N_COMPACT_VOCAB
    assert len(compact_tokens) == N_GPT2_TOKENS
    assert compact_tokens.dtype == np.uint16
    assert int(compact_tokens.max()) == N_COMPACT_VOCAB - 1
    # the compact ids are exactly GPT-2's ids renumbered: mapping back gives GPT-2's encoding
    assert np.array_equal(gpt2_compact.used_ids[compact_tokens], gpt2_tokens)
    assert np.array_equal(gpt2_compact.used_ids, np.unique(gpt2_tokens))


def test_gpt2_compact_round_trip_whole_corpus(gpt2_compact, compact_tokens, corpus):
    ids = gpt2_compact.encode(corpus)
    assert np.array_equal(np.asarray(ids), compact_tokens)
    assert gpt2_compact.decode(ids) == corpus


def test_gpt2_compact_unknown_token_raises(gpt2_compact, gpt2_full):
    text = "Hamlet 日本"  # the corpus is ASCII: no token of 日本 is in the compact vocabulary
    with pytest.raises(DataError, match=r"not in the compact vocabulary of 19378 ids.*compact_vocab=False"):
        gpt2_compact.encode(text)
    assert gpt2_full.decode(gpt2_full.encode(text)) == text


def test_gpt2_decode_out_of_range_raises(gpt2_compact, gpt2_full):
    with pytest.raises(DataError, match="out of range"):
        gpt2_compact.decode([N_COMPACT_VOCAB])
    with pytest.raises(DataError, match="out of range"):
        gpt2_full.decode([50257])


def test_gpt2_special_token_text_is_plain_text(gpt2_full):
    text = "end<|endoftext|>start"
    ids = gpt2_full.encode(text)
    assert 50256 not in ids
    assert gpt2_full.decode(ids) == text


# --------------------------------------------------------------------------------- to_dict / from_dict


@pytest.mark.parametrize("which", ["char_tok", "gpt2_full", "gpt2_compact"])
def test_tokenizer_from_dict_round_trip(request, corpus, which):
    tok = request.getfixturevalue(which)
    d = json.loads(json.dumps(tok.to_dict()))  # JSON-safe
    assert d == tok.to_dict()
    rebuilt = tokenizer_from_dict(d)
    assert type(rebuilt) is type(tok) and rebuilt.vocab_size == tok.vocab_size
    assert rebuilt.to_dict() == tok.to_dict()
    text = corpus[:20_000] + corpus[3_000_000:3_020_000]
    assert rebuilt.encode(text) == tok.encode(text)
    assert rebuilt.decode(tok.encode(text)) == text


def test_tokenizer_from_dict_rejects_bad_dicts(char_tok):
    with pytest.raises(DataError, match="choose one of char, gpt2"):
        tokenizer_from_dict({"name": "bytes"})
    with pytest.raises(DataError, match="vocab_size=99"):
        tokenizer_from_dict({**char_tok.to_dict(), "vocab_size": 99})
    with pytest.raises(DataError, match="sha256"):
        tokenizer_from_dict({"name": "gpt2", "ranks_sha256": "0" * 64})


def test_build_tokenizer_unknown_name_lists_valid(corpus):
    with pytest.raises(DataError, match=r"tokenizer='bpe' is not valid; choose one of char, gpt2"):
        build_tokenizer("bpe", corpus)


# ---------------------------------------------------------------------------------------------- cache


def test_encode_corpus_dtype_and_values(char_tokens, char_tok, corpus):
    assert char_tokens.dtype == np.uint16 and char_tokens.ndim == 1
    assert np.array_equal(char_tokens, char_tok.encode_array(corpus))
    assert D._token_dtype(65_536) == np.uint16 and D._token_dtype(65_537) == np.uint32


def test_second_encode_loads_from_cache(monkeypatch, tmp_path, char_tok, corpus):
    first = encode_corpus(char_tok, corpus, tmp_path)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and files[0].name.startswith("char-")
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was renamed, not left behind

    def must_not_encode(text):
        raise AssertionError("encoded again instead of loading the cache")

    monkeypatch.setattr(char_tok, "encode_array", must_not_encode)
    second = encode_corpus(char_tok, corpus, tmp_path)
    assert isinstance(second, np.memmap)  # memory-mapped from the .npy
    assert np.array_equal(first, second)


def test_cache_keyed_by_tokenizer_and_corpus(tmp_path, cache_dir, char_tokens, gpt2_tokens, compact_tokens):
    names = sorted(p.name for p in cache_dir.glob("*.npy"))
    assert len(names) == 3  # char, gpt2, gpt2-compact: three different keys
    assert sorted(n.split("-v")[0] for n in names) == ["char", "gpt2", "gpt2-compact"]
    # same tokenizer name, different vocabulary -> different key; different corpus -> different key
    text = "abcabc" * 10
    encode_corpus(CharTokenizer("abc"), text, tmp_path)
    encode_corpus(CharTokenizer("abcd"), text, tmp_path)
    encode_corpus(CharTokenizer("abc"), text + "a", tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_unwritable_cache_falls_back_with_warning(tmp_path, char_tok):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.warns(UserWarning, match="without a cache"):
        tokens = encode_corpus(char_tok, "to be or not to be", tmp_path / "a-file" / "cache")
    assert char_tok.decode(tokens) == "to be or not to be"


def test_damaged_cache_is_rebuilt(tmp_path, char_tok):
    text = "to be or not to be"
    encode_corpus(char_tok, text, tmp_path)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged token cache"):
        tokens = encode_corpus(char_tok, text, tmp_path)
    assert char_tok.decode(tokens) == text


# -------------------------------------------------------------------------------------------- batches


def test_batches_split_by_position():
    tokens = np.arange(1000, dtype=np.uint16)
    b = Batches(tokens, block_size=8)
    assert np.array_equal(b.train, tokens[:900]) and np.array_equal(b.val, tokens[900:])


def test_batches_shapes_and_shift(char_tokens):
    b = Batches(char_tokens, block_size=32)
    x, y = b.sample("train", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 32)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_batches_train_and_val_disjoint_and_cover_their_range():
    """With tokens = positions, every train window (targets included) lies before the split and every val
    window after it, and the extreme windows are reachable (no off-by-one)."""
    tokens = np.arange(100, dtype=np.int64)
    b = Batches(tokens, block_size=4)
    g = torch.Generator().manual_seed(1)
    x, y = b.sample("train", 3000, g)
    assert int(x.min()) == 0 and int(y.max()) == 89
    assert torch.equal(y, x + 1)
    x, y = b.sample("val", 3000, g)
    assert int(x.min()) == 90 and int(y.max()) == 99


def test_batches_deterministic_given_generator(char_tokens):
    b = Batches(char_tokens, block_size=16)
    x1, y1 = b.sample("train", 8, torch.Generator().manual_seed(42))
    torch.manual_seed(123)  # the global RNG must not matter
    x2, y2 = b.sample("train", 8, torch.Generator().manual_seed(42))
    x3, _ = b.sample("train", 8, torch.Generator().manual_seed(43))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_val_batches_identical_across_calls(char_tokens):
    b = Batches(char_tokens, block_size=16)
    first = b.val_batches(3, 4)
    torch.manual_seed(7)
    b.sample("val", 4, torch.Generator().manual_seed(0))
    second = b.val_batches(3, 4)
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(first[0][0], first[1][0])  # different batches within one call
    assert not torch.equal(b.val_batches(1, 4, seed=1)[0][0], first[0][0])


def test_batches_too_short_raises():
    with pytest.raises(DataError, match=r"val split has 5 tokens .* block_size=8 needs at least 9"):
        Batches(np.arange(50, dtype=np.uint16), block_size=8)


def test_batches_empty_corpus_raises():
    with pytest.raises(DataError, match="empty"):
        Batches(np.zeros(0, dtype=np.uint16), block_size=8)


def test_batches_bad_split_raises():
    b = Batches(np.arange(1000, dtype=np.uint16), block_size=8)
    with pytest.raises(DataError, match="choose one of train, val"):
        b.sample("test", 2, torch.Generator())


# ------------------------------------------------------------------------------------------- load_data


def test_load_data_char(monkeypatch, cache_dir, char_tokens):
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(cache_dir))
    tok, batches = load_data(TrainConfig(tokenizer="char"), block_size=64)
    assert tok.vocab_size == N_CHARS
    assert len(batches.train) + len(batches.val) == len(char_tokens)
    x, y = batches.sample("train", 2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 64) and int(x.max()) < tok.vocab_size


@pytest.mark.parametrize(("compact", "vocab"), [(True, N_COMPACT_VOCAB), (False, 50257)])
def test_load_data_gpt2(monkeypatch, cache_dir, compact_tokens, gpt2_tokens, compact, vocab):
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(cache_dir))  # the module fixtures' cache: no re-encoding
    tok, batches = load_data(TrainConfig(tokenizer="gpt2", compact_vocab=compact), block_size=128)
    assert tok.vocab_size == vocab
    assert len(batches.train) + len(batches.val) == N_GPT2_TOKENS
    assert np.array_equal(batches.val, (compact_tokens if compact else gpt2_tokens)[len(batches.train) :])


# ------------------------------------------------------------------------------- data folder, end to end


def test_load_data_honours_train_config_data_dir(monkeypatch, tmp_path):
    """TrainConfig.data_dir (the CLI's --data_dir) is where load_data reads the corpus, and it wins over
    $MINIGPT_DATA_DIR; a folder without the GPT-2 ranks fails naming that folder, never falling back."""
    mine = write_corpus(tmp_path / "mine", "abcd\n" * 200)
    monkeypatch.setenv(D.DATA_DIR_ENV, str(REPO_DATA))
    monkeypatch.setenv(D.CACHE_DIR_ENV, str(tmp_path / "cache"))
    tok, batches = load_data(TrainConfig(tokenizer="char", data_dir=str(mine)), block_size=8)
    assert tok.vocab_size == 5 and tok.chars == "\nabcd"
    assert len(batches.train) + len(batches.val) == 1000
    with pytest.raises(DataError, match=r"could not find gpt2\.tiktoken.*data_dir=.*mine"):
        load_data(TrainConfig(tokenizer="gpt2", data_dir=str(mine)), block_size=8)


def test_wheel_layout_finds_the_packaged_data(tmp_path):
    """An installed package has no <repo>/data next to it: the wheel carries data/ as minigpt/_data
    (pyproject's force-include), and resolve_data_dir must find it there, with the cache outside the
    package. Simulated with a copy of the package in a fresh interpreter."""
    import shutil
    import subprocess
    import sys

    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO_DATA.parent / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force == {"data": "minigpt/_data"}
    assert data_files._DEFAULT_DATA_DIRS == (REPO_DATA, Path(D.__file__).resolve().parent / "_data")

    site = tmp_path / "site-packages"
    shutil.copytree(Path(D.__file__).resolve().parent, site / "minigpt",
                    ignore=shutil.ignore_patterns("__pycache__", "_data"))
    (site / "minigpt" / "_data").mkdir()
    for name in ("shakespeare.txt", "gpt2.tiktoken", "README.md"):
        (site / "minigpt" / "_data" / name).symlink_to(REPO_DATA / name)
    env = {k: v for k, v in os.environ.items()
           if k not in (D.DATA_DIR_ENV, D.CACHE_DIR_ENV, "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "xdg"), OMP_NUM_THREADS="1")
    code = ("import json, minigpt.data as d; print(json.dumps([d.__file__, str(d.resolve_data_dir()), "
            "str(d.default_cache_dir()), len(d.load_corpus()), d.GPT2Tokenizer().encode('Hello world')]))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    module, data_dir, cache, n_chars, ids = json.loads(p.stdout.strip().splitlines()[-1])
    assert Path(module).parent == site / "minigpt"  # the copy, not the repository
    assert Path(data_dir) == site / "minigpt" / "_data"
    assert Path(cache) == tmp_path / "xdg" / "minigpt"  # never inside site-packages
    assert n_chars == 5_056_502 and ids == [15496, 995]

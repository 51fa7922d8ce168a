"""The CLI fuzzed with Hypothesis: option names and values drawn valid, invalid, of the wrong type, extreme and
unicode, for `train`, `compare`, `sample` and `presets`. Every run must end in one of two ways:

- training ran (exit 0, or exit 1 with one line when the loss diverged, or the run reached the training loop
  and was cut short here after a few micro-batches: a drawn `--steps 10**20` is valid and would otherwise
  run for ever), or `sample`/`presets` printed their output (exit 0);
- one line `error: ...` on stderr and exit 2.

Never a traceback (an exception out of `main`). `main` runs in-process (no interpreter start per example) from
a scratch folder, so `--out ""` or the default `runs/...` land there. Left out of the draw, because they are
valid and merely slow, not error paths: `--compile true` (torch.compile on the CPU takes minutes), and sizes
between the small valid ones drawn here and the absurd ones the memory check refuses (a 10**4-wide model
trains, slowly). Examples: 24 per command (compare 6, presets 12) by default, derandomized;
`--hypothesis-profile=long` (tests/conftest.py) draws 2000 (500, 1000) at random.

`test_cases_the_fuzz_found` keeps every failure the searches found (by hand-written probes and the long
profile), each with how it now ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import typing
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.control import currently_in_test_context  # noqa: E402

from minigpt import ModelConfig, TrainConfig  # noqa: E402
from minigpt import train as train_module  # noqa: E402
from minigpt.__main__ import _CHOICES, main  # noqa: E402
from minigpt.config import PRESETS  # noqa: E402
from minigpt.registry import RUNS  # noqa: E402

SMALL = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--block_size", "16", "--batch_size", "2",
         "--eval_batches", "1", "--progress", "false"]
MAX_MICRO_STEPS = 12  # then the run counts as "training ran" and is stopped (see the module docstring)

# --------------------------------------------------------------------------------------------- values

JUNK = st.sampled_from(["", " ", "abc", "1,5", "0x10", "1e", "--", "-", "None", "nan", "inf", "-inf", "1e309",
                        "-1e309", "1e-320", "99999999999999999999999", "-99999999999999999999999", "+3", " 3 ",
                        "\u0663", "\u00e9t\u00e9", "\u65e5\u672c", "\u202e1", "\x00", "true", "[1]", "{}"])
TEXT = st.text(max_size=12)  # any unicode, surrogates included

# Small valid values per field where the dataclass default would be slow or the range matters; other ints
# draw from 0..8, which covers both sides of every lower bound.
VALID_INT = {"steps": [1, 2, 3, 10**20], "batch_size": [1, 2, 3], "grad_accum": [1, 2], "block_size": [2, 8, 16],
             "n_layer": [1, 2], "n_head": [1, 2, 4], "n_kv_head": [1, 2], "n_embd": [8, 16, 32, 48],
             "eval_batches": [1, 2], "eval_interval": [1, 2, 10**20], "warmup_steps": [0, 1, 10**20],
             "checkpoint_interval": [0, 1], "pad_vocab_to": [1, 7, 64], "vocab_size": [2, 84, 10**6],
             "seed": [0, 1, 2**63 - 1, 2**63]}
ABSURD_INT = [10**9, 10**12, 2**64, 10**30]  # valid integers the memory check (or a config check) must refuse
VALID_FLOAT = {"lr": [1e-4, 3e-3, 1e3], "dropout": [0.0, 0.1, 0.99], "min_lr_ratio": [0.0, 1.0],
               "beta1": [0.0, 0.9], "beta2": [0.95, 0.999999], "norm_eps": [1e-5, 1e-30], "init_std": [0.02, 1e30],
               "rope_base": [10.0, 1e30], "z_loss": [0.0, 1e-4], "logit_softcap": [0.0, 30.0], "grad_clip": [0.0, 1.0]}

HINTS = {f.name: typing.get_type_hints(cls)[f.name]
         for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}


def _base(tp: typing.Any) -> type:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def field_value(name: str) -> st.SearchStrategy[str]:
    """A value for config field `name`: valid (about half the draws, so that runs do reach training), invalid,
    of the wrong type, extreme or unicode."""
    base = _base(HINTS[name])
    optional = type(None) in typing.get_args(HINTS[name])
    none = [st.just("none")] if optional else []
    if base is bool:
        valid = ["false", "0", "no", "off"] if name == "compile" else ["true", "false", "yes", "0", "ON"]
        return st.one_of(*[st.sampled_from(valid)] * 3, JUNK, *none)
    if base is int:
        valid = st.sampled_from(VALID_INT.get(name, list(range(9))))
        return st.one_of(*[valid.map(str)] * 4, st.sampled_from(ABSURD_INT).map(str), st.integers(-3, 0).map(str),
                         JUNK, TEXT, *none)
    if base is float:
        valid = st.sampled_from(VALID_FLOAT.get(name, [0.0, 0.5, 1.0]))
        return st.one_of(*[valid.map(repr)] * 4, st.floats(allow_nan=True, allow_infinity=True).map(repr),
                         st.integers(-3, 3).map(str), JUNK, TEXT, *none)
    if name in _CHOICES:
        valid = [c for c in _CHOICES[name] if c not in ("cuda",)] + ["cuda"]
        return st.one_of(*[st.sampled_from(valid)] * 4, st.sampled_from(valid).map(str.upper), JUNK, TEXT, *none)
    return st.one_of(JUNK, TEXT, *none)  # data_dir


@st.composite
def field_options(draw: st.DrawFn, skip: tuple[str, ...] = ()) -> list[str]:
    """A few `--field value` options (sometimes `--field=value`, `--field-name`, a misspelt or unicode name,
    a missing value, or a stray positional)."""
    names = [n for n in HINTS if n not in skip]
    argv: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["field"] * 12 + ["misspelt", "unknown", "dashes", "no_value", "positional"]))
        name = draw(st.sampled_from(names))
        value = draw(field_value(name))
        if kind == "misspelt":
            i = draw(st.integers(0, len(name) - 1))
            argv += [f"--{name[:i]}{name[i + 1:]}", value]
        elif kind == "unknown":
            argv += ["--" + draw(TEXT), value]
        elif kind == "dashes":
            argv += [f"--{name.replace('_', '-')}={value}"]
        elif kind == "no_value":
            argv += [f"--{name}"]
        elif kind == "positional":
            argv += [value]
        else:
            argv += [f"--{name}", value] if draw(st.booleans()) else [f"--{name}={value}"]
    return argv


def path_value(scratch: Path) -> st.SearchStrategy[str]:
    """An output or input path: fresh, an existing file, under a file, empty, unicode, with a NUL byte."""
    return st.sampled_from([str(scratch / "fresh")] * 4 + [str(scratch / "a_file"), str(scratch / "a_file" / "x"), "",
                            ".", str(scratch / "\u00f1\u65e5"), "bad\x00path", str(scratch / "dir")])


# ------------------------------------------------------------------------------------------- the check


class _Enough(BaseException):
    """Raised from inside the training loop after MAX_MICRO_STEPS micro-batches: training ran."""


@contextlib.contextmanager
def scratch_dir() -> typing.Iterator[Path]:
    """A fresh working folder with a file, a folder and the cwd moved into it."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        scratch = Path(tmp)
        (scratch / "a_file").write_text("not a folder")
        (scratch / "dir").mkdir()
        yield scratch


def run_cli(argv: list[str]) -> tuple[str, int | None, str, str]:
    """Run `main(argv)` in-process: (outcome, exit status, stdout, stderr)."""
    real, calls = train_module._forward_backward, [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        if calls[0] > MAX_MICRO_STEPS:
            raise _Enough
        return real(*args, **kwargs)

    out, err = io.StringIO(), io.StringIO()
    train_module._forward_backward = counted
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the memory estimate's "close to the limit" warning, resume notes
            rc = main(argv)
        return "returned", rc, out.getvalue(), err.getvalue()
    except _Enough:
        return "trained", None, out.getvalue(), err.getvalue()
    except SystemExit as e:  # --help
        return "exit", e.code, out.getvalue(), err.getvalue()
    finally:
        train_module._forward_backward = real


def check(argv: list[str]) -> None:
    outcome, rc, out, err = run_cli(argv)
    if currently_in_test_context():  # --hypothesis-show-statistics: how the runs ended
        hypothesis.event(f"{argv[0]}: {outcome} {rc}")
    if outcome == "trained" or (outcome == "exit" and rc == 0):
        return
    assert outcome == "returned", (argv, outcome)
    if rc == 0:
        return
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, rc, err[-3000:])
    assert "Traceback" not in err and "\n" not in lines[0]
    if rc == 1:
        assert "training diverged" in lines[0], (argv, err)
    else:
        assert rc == 2, (argv, rc, err)


def _scaled(divisor: int) -> settings:
    return settings(max_examples=max(2, settings.default.max_examples // divisor))


# ------------------------------------------------------------------------------------------- the tests


@given(data=st.data())
def test_train_fuzz(data: st.DataObject) -> None:
    with scratch_dir() as scratch:
        preset = data.draw(st.one_of(*[st.sampled_from(list(PRESETS))] * 4, JUNK), label="preset")
        flags = data.draw(st.one_of(*[st.just([])] * 3, st.lists(st.sampled_from(["--resume", "--overwrite"]),
                                                                  max_size=2)), label="flags")
        stop = data.draw(st.one_of(*[st.just([])] * 3, st.sampled_from(["1", "0", "-1", "x", "10**9"]).map(
            lambda v: ["--stop_at", v])), label="stop_at")
        out = data.draw(st.one_of(path_value(scratch), st.none()), label="out")
        fuzzed = data.draw(field_options(), label="options")
        argv = ["train", "--preset", preset, "--steps", "2", *SMALL, *flags, *stop, *fuzzed]
        check(argv + ([] if out is None else ["--out", out]))


@_scaled(4)
@given(data=st.data())
def test_compare_fuzz(data: st.DataObject) -> None:
    from minigpt.compare import reserved_fields

    with scratch_dir() as scratch:
        variants = data.draw(st.lists(st.one_of(*[st.sampled_from(list(RUNS))] * 3, JUNK), min_size=1, max_size=2),
                             label="variants")
        out = data.draw(path_value(scratch), label="out")
        fuzzed = data.draw(field_options(skip=tuple(reserved_fields())), label="options")
        check(["compare", "--steps", "2", *SMALL, "--variants", *variants, "--out", out, *fuzzed])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz") / "run"
    assert main(["train", "--steps", "2", *SMALL, "--out", str(run)]) == 0
    (run / "truncated.pt").write_bytes((run / "ckpt.pt").read_bytes()[:100])
    return run


@given(data=st.data())
def test_sample_fuzz(checkpoint: Path, data: st.DataObject) -> None:
    with scratch_dir() as scratch:
        ckpt = data.draw(st.one_of(st.sampled_from([str(checkpoint / "ckpt.pt")] * 6 + [
            str(checkpoint / "truncated.pt"), str(checkpoint), str(checkpoint / "missing.pt")]),
            path_value(scratch)), label="checkpoint")
        argv = ["sample", "--checkpoint", ckpt]
        # (no huge valid count: `--max_new_tokens 10**23` is valid and generates for ever, as asked)
        numbers = {"--max_new_tokens": st.one_of(*[st.integers(-2, 8).map(str)] * 3,
                                                 JUNK.filter(lambda v: v.strip().lstrip("+").isdigit() is False)),
                   "--temperature": st.one_of(st.sampled_from(["0", "-0.0", "1e-45", "0.8", "1e30", "nan", "inf"]),
                                              st.floats().map(repr), JUNK),
                   "--top_k": st.one_of(*[st.integers(-2, 100).map(str)] * 3, st.sampled_from(ABSURD_INT).map(str),
                                        JUNK),
                   "--seed": st.one_of(*[st.integers(-2, 2**64).map(str)] * 3, JUNK),
                   "--device": st.one_of(*[st.sampled_from(["cpu", "auto", "cuda", "mps", "CPU"])] * 3, JUNK),
                   "--prompt": TEXT, "--data_dir": st.one_of(path_value(scratch), JUNK)}
        for option in data.draw(st.lists(st.sampled_from(sorted(numbers)), max_size=4), label="options"):
            argv += [option, data.draw(numbers[option], label=option)]
        if "--max_new_tokens" not in argv:
            argv += ["--max_new_tokens", "4"]
        argv += data.draw(st.lists(st.one_of(JUNK, st.just("--bogus")), max_size=1), label="extra")
        check(argv)


@_scaled(2)
@given(extra=st.lists(st.one_of(JUNK, TEXT, st.sampled_from(["--help", "--preset", "-h", "--"])), max_size=2))
def test_presets_fuzz(extra: list[str]) -> None:
    with scratch_dir():
        check(["presets", *extra])


SMALL_TRAIN = ["train", "--steps", "2", *SMALL]


@pytest.mark.parametrize("argv, ends", [
    # found by the long profile: a NUL in a path made pathlib raise ValueError (train and compare)
    ([*SMALL_TRAIN, "--out", "bad\x00path"], "error: argument 'bad\\x00path' contains a NUL character"),
    (["compare", "--steps", "2", *SMALL, "--variants", "pre_ln", "--out", "bad\x00path"], "error: argument"),
    # found by a probe after the long run: a lone surrogate cannot be encoded as a file name
    ([*SMALL_TRAIN, "--out", "x\ud800"], "error: argument 'x\\ud800' contains a NUL character or a lone"),
    # found by probes before the search: a seed beyond 64 bits overflowed in torch (ValueError)
    ([*SMALL_TRAIN, "--seed", "99999999999999999999999"], "error: seed=99999999999999999999999 is not valid"),
    # a mistyped n_layer: the memory check must not loop over 10**14 layers, and refuses
    ([*SMALL_TRAIN, "--n_layer", "99999999999999"], "error: this run needs about"),
])
def test_cases_the_fuzz_found(argv: list[str], ends: str) -> None:
    with scratch_dir():
        outcome, rc, _, err = run_cli(argv)
    assert (outcome, rc) == ("returned", 2) and err.startswith(ends) and err.count("\n") == 1, err


@pytest.mark.parametrize("options, ends", [
    (["--seed", "99999999999999999999999"], "error: seed=99999999999999999999999 must be an integer in"),  # probe
    (["--temperature", "1e-45"], ""),  # probe: 1e-45 overflowed the logits to inf, softmax gave nan
    (["--temperature", "9.361019166384543e-73"], ""),  # long profile: 0 in float32, 0/0 = nan
])
def test_sample_cases_the_fuzz_found(checkpoint: Path, options: list[str], ends: str) -> None:
    with scratch_dir():
        outcome, rc, out, err = run_cli(["sample", "--checkpoint", str(checkpoint / "ckpt.pt"),
                                         "--max_new_tokens", "4", *options])
    assert outcome == "returned"
    if ends:
        assert rc == 2 and err.startswith(ends) and err.count("\n") == 1, err
    else:
        assert rc == 0 and out and not err, err


def test_the_fuzz_harness_catches_a_traceback(monkeypatch) -> None:
    """The check must fail on the failure it hunts: an exception escaping main."""
    import minigpt.__main__ as cli

    monkeypatch.setattr(cli, "cmd_presets", lambda: 1 / 0)
    with scratch_dir(), pytest.raises(ZeroDivisionError):
        check(["presets"])
    monkeypatch.setattr(cli, "cmd_presets", lambda: print("two\nlines", file=__import__("sys").stderr) or 2)
    with scratch_dir(), pytest.raises(AssertionError):
        check(["presets"])

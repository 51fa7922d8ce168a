"""The trainer: schedule, learning, hooks, after-step, exact resume, divergence guard, safe checkpoints.

Everything runs a 1-layer d32 model on a tiny synthetic corpus (milliseconds per step) and one torch thread:
the tests compare results bitwise, and one thread is also what keeps them fast on a shared 2-core machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest
import torch

from minigpt import ModelConfig, TrainConfig, build_model
from minigpt import train as train_module
from minigpt.data import Batches, CharTokenizer
from minigpt.train import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    CheckpointError,
    TrainingInterrupted,
    divergence_reason,
    divergence_threshold,
    evaluate,
    load_checkpoint,
    lr_at,
    model_from_checkpoint,
    save_checkpoint,
    train,
)

TEXT = "To be, or not to be, that is the question. Whether 'tis nobler in the mind to suffer.\n" * 40
TINY = dict(block_size=16, n_layer=1, n_head=2, n_embd=32, position="rope", mlp="swiglu", bias=False,
            tie_embeddings=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # conftest restores the previous count


@pytest.fixture(scope="module")
def data():
    tok = CharTokenizer.from_corpus(TEXT)
    return tok, Batches(tok.encode_array(TEXT), block_size=16)


def cfgs(variant: str = "pre_ln", **train_kw) -> tuple[ModelConfig, TrainConfig]:
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_kw = {k: train_kw.pop(k) for k in list(train_kw) if k in model_fields}
    tc = dict(steps=40, batch_size=4, eval_interval=10, eval_batches=2, lr=3e-3, warmup_steps=0,
              progress=False)
    tc.update(train_kw)
    return ModelConfig(variant=variant, **{**TINY, **model_kw}), TrainConfig(**tc)


def run(data, variant="pre_ln", out=None, hooks=(), resume=False, **kw):
    tok, batches = data
    extra = {k: kw.pop(k) for k in ("stop_at", "overwrite", "model") if k in kw}
    mc, tc = cfgs(variant, **kw)
    return train(mc, tc, out, hooks=hooks, batches=batches, tokenizer=tok, resume=resume, **extra)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------ schedule


def test_lr_at_warmup_then_cosine():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == 0.0
    assert lr_at(5, cfg) == pytest.approx(5e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # end of warmup: the peak
    assert lr_at(55, cfg) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))  # cosine midpoint
    assert lr_at(100, cfg) == pytest.approx(1e-4)  # the last step reaches lr * min_lr_ratio
    assert lr_at(150, cfg) == pytest.approx(1e-4)
    decay = [lr_at(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    no_warmup = dataclasses.replace(cfg, warmup_steps=0)
    assert lr_at(0, no_warmup) == pytest.approx(1e-3) and lr_at(1, no_warmup) < 1e-3


def test_divergence_rule():
    thr = divergence_threshold(84)
    assert thr == pytest.approx(2 * math.log(84))
    assert divergence_threshold(84, initial_loss=20.0) == pytest.approx(40.0)  # an odd init raises the bar
    assert divergence_reason(3.0, 1.0, thr) is None
    assert "non-finite loss" in divergence_reason(float("nan"), 1.0, thr)
    assert "gradient norm" in divergence_reason(3.0, float("inf"), thr)
    assert "exploded" in divergence_reason(thr + 0.1, 1.0, thr)


# ------------------------------------------------------------------------------------------------ training


def test_training_reduces_loss_and_logs(data, tmp_path):
    r = run(data, steps=60, out=tmp_path, lr=1e-2)
    assert len(r.losses) == 60 and r.step == 60
    assert sum(r.losses[-5:]) / 5 < 0.6 * r.losses[0]
    assert [s for s, _ in r.val] == [10, 20, 30, 40, 50, 60]
    assert r.val[-1][1] < r.val[0][1]
    assert r.ms_per_step > 0 and r.tokens_per_s > 0
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [rec["step"] for rec in records] == list(range(1, 61))
    assert {"step", "loss", "lr", "grad_norm", "ms"} <= set(records[0])
    assert [rec["step"] for rec in records if "val_loss" in rec] == [10, 20, 30, 40, 50, 60]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model"]["vocab_size"] == data[0].vocab_size and cfg["result"]["step"] == 60


def test_vocab_size_comes_from_tokenizer(data):
    tok, batches = data
    mc, tc = cfgs(steps=1)
    r = train(dataclasses.replace(mc, vocab_size=500), tc, batches=batches, tokenizer=tok)
    assert r.model_config.vocab_size == tok.vocab_size == r.model.lm_head.out_features


def test_hooks_see_grads_before_the_step(data):
    torch.manual_seed(TrainConfig().seed)
    seen: list[tuple[int, torch.Tensor, bool]] = []

    class Probe:  # an object with on_step ...
        def on_step(self, model, step, loss):
            assert isinstance(loss, float)
            grads_ok = all(p.grad is not None for p in model.parameters())
            seen.append((step, model.lm_head.weight.detach().clone(), grads_ok))

    calls = []
    r = run(data, steps=4, hooks=[Probe(), lambda m, s, loss: calls.append(s)])  # ... and a plain callable
    mc, _ = cfgs()
    torch.manual_seed(r.train_config.seed)
    init = build_model(dataclasses.replace(mc, vocab_size=data[0].vocab_size)).lm_head.weight
    assert [s for s, _, _ in seen] == [1, 2, 3, 4] and calls == [1, 2, 3, 4]
    assert all(ok for _, _, ok in seen)
    assert torch.equal(seen[0][1], init)  # step 1's hook ran before step 1's update ...
    for (_, before, _), (_, after, _) in zip(seen, seen[1:], strict=False):
        assert not torch.equal(before, after)  # ... and each update happened between two hooks


def test_after_optimizer_step_is_called_after_each_update(data, monkeypatch):
    calls = []

    def counting_build(cfg):
        model = build_model(cfg)
        weights_seen = []

        def after_optimizer_step():
            weights_seen.append(model.lm_head.weight.detach().clone())
            calls.append(len(weights_seen))

        model.after_optimizer_step = after_optimizer_step
        return model

    monkeypatch.setattr(train_module, "build_model", counting_build)
    r = run(data, steps=5)
    assert calls == [1, 2, 3, 4, 5] and r.step == 5


def test_ngpt_weights_stay_on_the_sphere(data):
    r = run(data, "ngpt", steps=5, lr=5e-2)
    emb = r.model.wte.weight.detach()
    assert torch.allclose(emb.norm(dim=-1), torch.ones(emb.size(0)), atol=1e-5)


def test_evaluate_is_deterministic_and_restores_mode(data):
    tok, batches = data
    mc, _ = cfgs(dropout=0.2, vocab_size=tok.vocab_size)
    model = build_model(mc).train()
    val = batches.val_batches(2, 4)
    assert evaluate(model, val) == evaluate(model, val)
    assert model.training


# ------------------------------------------------------------------------------------------ exact resume

RESUME_KW = dict(steps=40, dropout=0.1, grad_accum=2, warmup_steps=5, checkpoint_interval=15)


def test_exact_resume_is_bitwise(data, tmp_path):
    straight = run(data, out=tmp_path / "a", **RESUME_KW)
    first = run(data, out=tmp_path / "b", stop_at=20, **RESUME_KW)
    assert first.step == 20 and load_checkpoint(tmp_path / "b" / CHECKPOINT_FILE)["step"] == 20
    resumed = run(data, out=tmp_path / "b", resume=True, **RESUME_KW)
    assert resumed.step == 40
    assert resumed.losses == straight.losses  # bitwise: float equality of every step's loss
    assert resumed.val == straight.val
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / METRICS_FILE).read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 41))  # no step logged twice


def test_resume_with_another_step_count_warns_and_extends(data, tmp_path, recwarn):
    """`--steps 10` then `--steps 14 --resume` is allowed (extending a run) but is not the 14-step run: the
    user is told, and only then; a resume with the same `steps` is silent."""
    kw = dict(RESUME_KW, steps=10)
    run(data, out=tmp_path / "a", **kw)
    with pytest.warns(UserWarning, match=r"trained for steps=10\) with steps=14.*re-stretched from step 10"):
        longer = run(data, out=tmp_path / "a", resume=True, **dict(kw, steps=14))
    assert longer.step == 14 and len(longer.losses) == 14
    run(data, out=tmp_path / "b", stop_at=5, **kw)
    recwarn.clear()
    run(data, out=tmp_path / "b", resume=True, **kw)
    assert not [w for w in recwarn if "re-stretched" in str(w.message)]


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(data, tmp_path):
    straight = run(data, **RESUME_KW)

    def ctrl_c(model, step, loss):
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as exc:
        run(data, out=tmp_path, hooks=[ctrl_c], **RESUME_KW)
    assert isinstance(exc.value, KeyboardInterrupt)
    assert exc.value.result.step == 12 and exc.value.result.interrupted
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 12
    resumed = run(data, out=tmp_path, resume=True, **RESUME_KW)
    assert resumed.losses == straight.losses


def test_sigint_finishes_the_step_saves_and_resumes_exactly(data, tmp_path):
    """A real SIGINT (what Ctrl-C sends) during step 7 does not tear the step apart: the guard lets step 7
    finish, the loop saves its checkpoint and raises TrainingInterrupted; resuming gives the straight run."""
    import signal

    straight = run(data, **RESUME_KW)

    def ctrl_c(model, step, loss):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    # Whatever SIGINT did before (Python's default_int_handler; SIG_IGN when the test run was started in the
    # background, as a CI job may be), the guard must put exactly that back.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as exc:
        run(data, out=tmp_path, hooks=[ctrl_c], **RESUME_KW)
    assert exc.value.result.step == 7 and exc.value.result.checkpoint_step == 7
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    resumed = run(data, out=tmp_path, resume=True, **RESUME_KW)
    assert resumed.losses == straight.losses


def test_resume_refuses_another_config(data, tmp_path):
    run(data, out=tmp_path, steps=3)
    with pytest.raises(CheckpointError, match="variant.*pre_ln.*ngpt"):
        run(data, "ngpt", out=tmp_path, resume=True, steps=3)
    with pytest.raises(CheckpointError, match="n_embd: 32 in checkpoint vs 64"):
        run(data, out=tmp_path, resume=True, steps=3, n_embd=64)
    with pytest.raises(CheckpointError, match="lr"):
        run(data, out=tmp_path, resume=True, steps=3, lr=1e-4)
    with pytest.raises(CheckpointError, match="already exists"):
        run(data, out=tmp_path, steps=3)  # a new run never silently replaces a checkpoint
    with pytest.raises(CheckpointError, match="does not exist"):
        run(data, out=tmp_path / "nothing", resume=True, steps=3)


def test_model_from_checkpoint_round_trip(data, tmp_path):
    r = run(data, out=tmp_path, steps=3)
    model, tok, cfg = model_from_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert cfg == r.model_config and tok.to_dict() == data[0].to_dict() and not model.training
    x = torch.tensor([tok.encode("To be")])
    r.model.eval()
    assert torch.equal(model(x)[0], r.model(x)[0])


# ------------------------------------------------------------------------------------ divergence guard


def poison_at(step_to_poison: int):
    def hook(model, step, loss):
        if step == step_to_poison:
            next(model.parameters()).grad.view(-1)[0] = float("nan")

    return hook


def test_nan_stop_keeps_the_last_good_checkpoint(data, tmp_path):
    r = run(data, out=tmp_path, steps=30, checkpoint_interval=5, hooks=[poison_at(13)])
    assert r.diverged and r.diverged_step == 13 and r.step == 12
    assert "step 13" in r.message and "non-finite gradient norm" in r.message
    last = json.loads((tmp_path / METRICS_FILE).read_text().splitlines()[-1])
    assert last["step"] == 13 and last["diverged"]  # the stop itself is logged
    assert f"(loss {last['loss']:.4g})" in r.message  # step 13's own loss ...
    assert f"at lr {lr_at(13, r.train_config):.3g};" in r.message  # ... and its learning rate
    assert str(tmp_path / CHECKPOINT_FILE) in r.message and "(step 10)" in r.message
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert ckpt["step"] == 10
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(torch.isfinite(p).all() for p in r.model.parameters())  # the bad update was never applied


def test_huge_lr_is_caught_as_divergence(data, tmp_path):
    """An exploding (still finite) loss stops the run too, names step, loss and LR, and the checkpoint of
    the step before it survives: the diverged step writes no checkpoint."""
    r = run(data, out=tmp_path, steps=30, lr=50.0, grad_clip=0.0, checkpoint_interval=1)
    s = r.diverged_step
    assert r.diverged and s is not None and r.step == s - 1
    assert f"diverged at step {s}: loss " in r.message and "exploded above" in r.message
    assert f"at lr {lr_at(s, r.train_config):.3g};" in r.message and f"(step {s - 1})" in r.message
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert ckpt["step"] == s - 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    last = json.loads((tmp_path / METRICS_FILE).read_text().splitlines()[-1])
    assert last["step"] == s and last["diverged"] and "exploded" in last["reason"]


def test_nan_skip_continues(data, tmp_path):
    snapshots = {}

    def probe(model, step, loss):  # runs before poison_at: sees the weights each step starts from
        snapshots[step] = model.lm_head.weight.detach().clone()

    r = run(data, out=tmp_path, steps=20, on_nan="skip", hooks=[probe, poison_at(7)])
    assert not r.diverged and r.step == 20 and r.skipped_steps == [7] and len(r.losses) == 20
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [rec["step"] for rec in records if rec.get("skipped")] == [7]  # detected, and said so
    assert "non-finite gradient norm" in records[6]["reason"]
    assert torch.equal(snapshots[7], snapshots[8])  # step 7's update was dropped ...
    assert not torch.equal(snapshots[8], snapshots[9])  # ... and training went on
    assert all(torch.isfinite(p).all() for p in r.model.parameters())


# -------------------------------------------------------------------------------------- safe checkpoints


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, failure):
    """A write that dies half way (full disk, or Ctrl-C / a kill arriving mid-write) leaves the previous
    checkpoint byte for byte and no temp file behind."""
    path = tmp_path / CHECKPOINT_FILE
    good = {"format": "minigpt-checkpoint", "weights": torch.arange(1000.0)}
    save_checkpoint(good, path)
    before = path.read_bytes()
    real_save = torch.save
    beside = []

    def dying_save(obj, f, *a, **kw):
        beside.append(sorted(os.listdir(tmp_path)))  # the temp file being written, next to ckpt.pt
        f.write(b"PK\x03\x04 half a checkpoint")
        raise failure

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(type(failure)):
        save_checkpoint({"format": "minigpt-checkpoint", "weights": torch.zeros(1000)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert len(beside[0]) == 2 and beside[0][0].endswith(".tmp")  # it was written beside the real one
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]  # no temp file left behind


def test_checkpoint_is_fsynced_then_renamed_into_place(tmp_path, monkeypatch):
    """The order that makes the write atomic and durable: data to a temp file in the same folder, fsync,
    then os.replace onto the real name (a rename within one file system is atomic)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", Path(a), Path(b))),
                                                     real_replace(a, b))[1])
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint({"format": "minigpt-checkpoint", "w": torch.ones(3)}, path)
    assert events[0] == "fsync"
    _, src, dst = events[1]
    assert dst == path and src.parent == tmp_path and src != path
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))


def test_a_checkpoint_write_failing_mid_training_keeps_the_previous_one(data, tmp_path, monkeypatch):
    """The training loop goes through save_checkpoint: when its second checkpoint (step 10) dies mid-write,
    the run fails loudly and ckpt.pt still holds step 5, which resumes."""
    real_save, calls = torch.save, []

    def save_then_die(obj, f, *a, **kw):
        calls.append(obj["step"])
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half")
            raise OSError("No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(OSError, match="No space"):
        run(data, out=tmp_path, steps=20, checkpoint_interval=5)
    monkeypatch.setattr(torch, "save", real_save)
    assert calls == [5, 10]
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 5
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert run(data, out=tmp_path, steps=20, checkpoint_interval=5, resume=True).step == 20


def test_corrupt_and_missing_checkpoints_raise_checkpoint_error(data, tmp_path):
    run(data, out=tmp_path, steps=2)
    good = (tmp_path / CHECKPOINT_FILE).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt.*truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    not_ours = tmp_path / "tensor.pt"
    torch.save({"w": torch.zeros(2)}, not_ours)
    with pytest.raises(CheckpointError, match="not a minigpt checkpoint"):
        load_checkpoint(not_ours)


def test_checkpoint_that_does_not_fit_names_the_keys(data, tmp_path):
    """A checkpoint whose weights do not match its model (renamed, extra or reshaped tensors) is refused
    with the offending keys and shapes in the message, not a long load_state_dict traceback."""
    run(data, out=tmp_path, steps=2)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    state = ckpt["model"]
    state["lm_head.weight"] = state["lm_head.weight"][:, :16].clone()
    state["blocks.0.extra"] = torch.zeros(1)
    del state["wte.weight"]
    bad = save_checkpoint(ckpt, tmp_path / "bad" / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError) as exc:
        model_from_checkpoint(bad)
    msg = str(exc.value)
    assert str(bad) in msg and "does not fit this model" in msg
    assert "missing keys wte.weight" in msg and "unexpected keys blocks.0.extra" in msg
    vocab = data[0].vocab_size
    assert f"lm_head.weight ({vocab}, 16) in checkpoint vs ({vocab}, 32) in model" in msg


def test_checkpoint_holds_only_plain_data(data, tmp_path):
    """Configs, tokenizer and history are stored as JSON-safe data, never pickled objects, so the safe
    loader (weights_only=True) accepts the file and a tampered one cannot smuggle code in."""
    run(data, out=tmp_path, steps=2)
    ckpt = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)

    def plain(x) -> bool:
        if isinstance(x, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or isinstance(x, (torch.Tensor, str, int, float, bool))

    assert plain(ckpt)
    for key in ("model_config", "train_config", "tokenizer", "history"):
        assert json.loads(json.dumps(ckpt[key])) == ckpt[key], key
    assert ModelConfig.from_dict(ckpt["model_config"]).variant == "pre_ln"


class _Evil:
    """Unpickling this would run code: write a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "minigpt-checkpoint", "payload": _Evil(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="refused by the safe loader"):
        load_checkpoint(evil)
    assert not marker.exists()


# ------------------------------------------------------------------------ GPU details checked on the CPU


@pytest.mark.parametrize("variant, tie", [("pre_ln", True), ("ngpt", False)])
def test_padded_vocab_changes_only_the_table_sizes(variant, tie):
    """pad_vocab_to (GPU presets: 64) rounds the embedding/LM-head rows up for aligned matmuls; with the same
    weights on the real rows, logits, loss and sampling are those of the unpadded model, even when the padding
    rows hold weights that would win every softmax if their logits leaked."""
    torch.manual_seed(0)
    plain = build_model(ModelConfig(variant=variant, vocab_size=84, **{**TINY, "tie_embeddings": tie}))
    padded = build_model(ModelConfig(**{**plain.config.to_dict(), "pad_vocab_to": 64}))
    assert padded.wte.weight.shape[0] == padded.lm_head.weight.shape[0] == 128
    state = padded.state_dict()
    for k, v in plain.state_dict().items():
        state[k] = torch.cat([v, state[k][v.shape[0]:]]) if v.shape != state[k].shape else v
    padded.load_state_dict(state)
    with torch.no_grad():
        padded.lm_head.weight[84:] = 100.0
    idx = torch.randint(0, 84, (2, 16), generator=torch.Generator().manual_seed(1))
    (lp, loss_p), (lq, loss_q) = plain(idx, idx), padded(idx, idx)
    assert lq.shape == (2, 16, 84)
    torch.testing.assert_close(lq, lp)
    torch.testing.assert_close(loss_q, loss_p)
    out = padded.generate(idx[:, :4], 30, generator=torch.Generator().manual_seed(2))
    assert out.max().item() < 84


def test_resume_checks_the_number_of_ranks_and_tolerates_new_fields(data, tmp_path):
    """The global batch includes the DDP world size: resuming with another one would be another run. A model
    config field added since the checkpoint (pad_vocab_to) counts with its default."""
    run(data, out=tmp_path, steps=4, stop_at=2)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    mc, tc = ModelConfig.from_dict(ckpt["model_config"]), TrainConfig.from_dict(ckpt["train_config"])
    assert ckpt["world_size"] == 1
    with pytest.raises(CheckpointError, match="world_size"):
        train_module._check_resumable(ckpt, mc, tc, data[0], tmp_path / CHECKPOINT_FILE, world_size=2)
    del ckpt["model_config"]["pad_vocab_to"]
    train_module._check_resumable(ckpt, mc, tc, data[0], tmp_path / CHECKPOINT_FILE, world_size=1)

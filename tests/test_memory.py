"""minigpt.memory: the estimate's activation formula against what autograd actually saves, the kernel question
against what SDPA actually runs, and the check that refuses a run that cannot fit (CLI: one line, exit 2)."""

from __future__ import annotations

import dataclasses
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from minigpt import TrainConfig, build_model
from minigpt import memory as M
from minigpt.__main__ import main
from tests.conftest import FAIR, tiny_config

GB = 1_000_000_000


def saved_floats_per_token_layer(cfg, B=2, T=16) -> float:
    """Float32 values autograd saves per token and block, counted with saved-tensor hooks: the difference
    between 2 and 1 blocks, and between batch 2B and B (which removes what scales with the weights)."""

    def saved(n_layer: int, batch: int) -> int:
        c = dataclasses.replace(cfg, n_layer=n_layer)
        torch.manual_seed(0)
        model = build_model(c).train()
        held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        storages: dict[int, int] = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in held:
                storages[ptr] = t.untyped_storage().nbytes()
            return t

        idx = torch.randint(0, c.vocab_size, (batch, T))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(idx, idx)
        return sum(storages.values())

    per_layer = (saved(2, 2 * B) - saved(1, 2 * B)) - (saved(2, B) - saved(1, B))
    return per_layer / 4 / (B * T)


@pytest.mark.parametrize("variant, extra", [
    ("post_ln", {}), ("pre_ln", {}), ("pre_ln", {"mlp": "gelu"}), ("normformer", {}),
    ("normformer", {"mlp": "gelu"}), ("ngpt", {}), ("ngpt", {"ngpt_update": "slerp"}),
    ("pre_ln", {"n_embd": 96, "n_head": 6}), ("pre_ln", {"position": "learned"}), ("post_ln", {"qk_norm": True}),
    ("pre_ln", {"dropout": 0.1}), ("ngpt", {"dropout": 0.1}),
])
def test_activation_formula_matches_autograds_saved_tensors(variant, extra):
    cfg = tiny_config(variant, **{**FAIR, **extra})
    T = 16
    measured = saved_floats_per_token_layer(cfg, T=T)
    if cfg.dropout:  # SDPA's math path (no fused kernel with dropout on the CPU): probabilities, mask, dropped
        measured -= 3 * cfg.n_head * T
    assert M.activation_floats_per_token_layer(cfg) == pytest.approx(measured, rel=0.02)


@pytest.mark.parametrize("variant, extra", [
    ("post_ln", {}), ("pre_ln", {"mlp": "gelu", "position": "learned", "bias": True}), ("normformer", {}),
    ("ngpt", {}), ("pre_ln", {"tie_embeddings": True, "n_kv_head": 1}), ("ngpt", {"pad_vocab_to": 64}),
])
def test_parameter_count_is_the_models_own_within_3_percent(variant, extra):
    cfg = tiny_config(variant, **{**FAIR, **extra})
    assert M.num_params(cfg) == pytest.approx(build_model(cfg).num_params(), rel=0.03)


def test_every_variant_has_an_activation_entry():
    """A new variant works without one (it gets `_UNKNOWN`), but its estimate is then a guess: measure it."""
    from minigpt.registry import VARIANT_NAMES

    assert set(M._SAVES) == set(VARIANT_NAMES)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_attention_says_which_kernel_sdpa_runs(dropout):
    q = torch.randn(1, 2, 8, 16)
    with torch.profiler.profile() as prof:
        F.scaled_dot_product_attention(q, q, q, is_causal=True, dropout_p=dropout)
    math_path = any("attention_math" in e.name for e in prof.events())
    assert M.fused_attention(torch.device("cpu"), torch.float32, dropout, 16) is not math_path


def test_attention_matrix_counted_only_on_the_math_path():
    cfg, tcfg = tiny_config("pre_ln", block_size=256), TrainConfig(batch_size=4)
    fused = M.estimate_train_memory(cfg, tcfg, fused=True)
    math_ = M.estimate_train_memory(cfg, tcfg, fused=False)
    assert fused.attention == 0
    assert math_.attention == 4 * 4 * 256 * cfg.n_head * 256 * (cfg.n_layer + 2)  # 4·N·H·T·(L·k + 2), k = 1
    # quadratic in T on the math path, linear with the fused kernel
    long = dataclasses.replace(cfg, block_size=512)
    assert M.estimate_train_memory(long, tcfg, fused=False).attention == 4 * math_.attention
    assert M.estimate_train_memory(long, tcfg, fused=True).activations == 2 * fused.activations


def _avail(monkeypatch, n: int) -> None:
    monkeypatch.setattr(M, "available_memory", lambda device: (n, "MemAvailable"))


def test_refuses_with_the_estimate_and_the_largest_size_that_fits(monkeypatch):
    cfg, tcfg = tiny_config("pre_ln", block_size=4096), TrainConfig(batch_size=64)
    need = M.estimate_train_memory(cfg, tcfg).total
    _avail(monkeypatch, need // 3)
    with pytest.raises(M.InsufficientMemoryError) as e:
        M.check_memory(cfg, tcfg, "cpu")
    msg = str(e.value)
    assert M.human(need) in msg and M.human(need // 3) in msg and "\n" not in msg
    best_b = int(msg.split("--batch_size ")[1].split()[0])
    best_t = int(msg.split("--block_size ")[1].split()[0])
    fits = lambda m, t: M.estimate_train_memory(m, t).total <= need // 3  # noqa: E731
    assert fits(cfg, dataclasses.replace(tcfg, batch_size=best_b))
    assert not fits(cfg, dataclasses.replace(tcfg, batch_size=best_b + 1))
    assert fits(dataclasses.replace(cfg, block_size=best_t), tcfg)
    assert not fits(dataclasses.replace(cfg, block_size=best_t + 1), tcfg)


def test_warns_when_close_and_is_silent_when_roomy(monkeypatch):
    cfg, tcfg = tiny_config("ngpt"), TrainConfig(batch_size=4)
    need = M.estimate_train_memory(cfg, tcfg).total
    _avail(monkeypatch, int(need / 0.9))
    with pytest.warns(UserWarning, match="90% of the"):
        M.check_memory(cfg, tcfg, "cpu")
    _avail(monkeypatch, 10 * need)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.check_memory(cfg, tcfg, "cpu").total == need


def test_cpu_ranks_on_one_node_share_the_memory(monkeypatch):
    cfg, tcfg = tiny_config("pre_ln"), TrainConfig(batch_size=4)
    need = M.estimate_train_memory(cfg, tcfg).total
    _avail(monkeypatch, int(1.5 * need))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(M.InsufficientMemoryError, match="for 2 processes"):
        M.check_memory(cfg, tcfg, "cpu")


def test_cuda_uses_the_devices_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GB, 80 * GB))
    assert M.available_memory(torch.device("cuda", 0)) == (3 * GB, "free on cuda:0")


def test_cpu_available_memory_is_meminfos():
    got = M.available_memory("cpu")
    if got is None:
        pytest.skip("no /proc/meminfo here")
    meminfo = open("/proc/meminfo").read()
    avail = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
    assert 0 < got[0] <= avail * 1.05  # the cgroup limit may lower it; memory moves between the two reads


def test_cli_refuses_a_context_that_cannot_fit_in_seconds(tmp_path, monkeypatch, capsys):
    """The issue's probe: `train --preset cpu-tiny --variant pre_ln --block_size 100000` must stop before the
    first step (available memory pinned at 24 GB so the test does not depend on this machine's)."""
    _avail(monkeypatch, 24 * GB)
    t0 = time.perf_counter()
    rc = main(["train", "--preset", "cpu-tiny", "--variant", "pre_ln", "--block_size", "100000",
               "--out", str(tmp_path / "r"), "--progress", "false"])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: this run needs about")
    assert "24 GB available" in err and "--batch_size" in err and "--block_size" in err
    assert elapsed < 10
    assert not (tmp_path / "r").exists()

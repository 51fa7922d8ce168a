"""`sample --temperature 0` is greedy decoding: the most likely token at every step, so the output does not
depend on the seed and equals a plain argmax loop."""

from __future__ import annotations

import pytest
import torch

from minigpt import build_model
from minigpt.layers import ModelInputError
from minigpt.train import CHECKPOINT_FILE, model_from_checkpoint
from tests.conftest import tiny_config
from tests.test_cli import QUIET, TINY, run_main


def argmax_decode(model, idx: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.block_size:])
        idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


@pytest.mark.parametrize("variant", ["pre_ln", "ngpt"])
def test_temperature_0_is_argmax_decoding_whatever_the_seed(variant):
    torch.manual_seed(0)
    model = build_model(tiny_config(variant)).eval()
    prompt = torch.tensor([[1, 2, 3]])
    n = 40  # past block_size (32): the context is cropped as in sampling
    a = model.generate(prompt, n, temperature=0, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, n, temperature=0, top_k=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert torch.equal(a, argmax_decode(model, prompt, n))
    sampled = model.generate(prompt, n, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, sampled)  # a random untrained model: sampling does differ from greedy


def test_a_tiny_temperature_is_greedy_not_nan():
    """logits / 1e-45 overflows to inf, and softmax(inf − inf) is NaN: the max is subtracted first; a T that
    is 0 in float32 is greedy."""
    torch.manual_seed(0)
    model = build_model(tiny_config("pre_ln")).eval()
    prompt = torch.tensor([[1, 2, 3]])
    greedy = model.generate(prompt, 20, temperature=0)
    for t in (1e-37, 1e-45, 9.4e-73):  # the long fuzz run found 9.4e-73: 0 in float32, and 0/0 = nan
        assert torch.equal(model.generate(prompt, 20, temperature=t, generator=torch.Generator()), greedy)


@pytest.mark.parametrize("temperature", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_temperature_is_refused(temperature):
    model = build_model(tiny_config("pre_ln"))
    with pytest.raises(ModelInputError, match="must be a finite number >= 0"):
        model.generate(torch.tensor([[1]]), 2, temperature=temperature)


def test_cli_greedy_samples_are_identical_and_argmax(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_main(capsys, "train", "--steps", "5", *TINY, *QUIET, "--out", str(run))[0] == 0
    ckpt = str(run / CHECKPOINT_FILE)
    args = ["sample", "--checkpoint", ckpt, "--prompt", "ROMEO:", "--max_new_tokens", "30", "--temperature", "0"]
    rc1, out1, _ = run_main(capsys, *args, "--seed", "1")
    rc2, out2, _ = run_main(capsys, *args, "--seed", "2")
    assert rc1 == rc2 == 0 and out1 == out2
    model, tok, _ = model_from_checkpoint(ckpt, torch.device("cpu"))
    expected = argmax_decode(model.eval(), torch.tensor([tok.encode("ROMEO:")]), 30)
    assert out1 == tok.decode(expected[0].tolist()) + "\n"

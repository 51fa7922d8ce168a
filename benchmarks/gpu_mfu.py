"""Model FLOPs utilization (MFU) of each variant on a CUDA GPU, at a GPU preset (default: the real GPT-2 small).

    python benchmarks/gpu_mfu.py [--preset gpt2-124m] [--steps 40] [--variants pre_ln,ngpt] [--peak_tflops X]

Trains each variant for `--steps` optimizer steps on the shipped corpus with the preset's settings (bf16
autocast, torch.compile, fused AdamW: the trainer's CUDA defaults) and reads the trainer's ms/step, which
leaves out the first step (compilation) and evaluation. Prints JSON.

FLOPs per token: `GPTBase.flops_per_token` (PaLM, Chowdhery et al. 2022, App. B; nanoGPT's `estimate_mfu`):
    6·N + 12·L·T·d          N = parameters of the blocks and the LM head (a tied head counts)
MFU = FLOPs per token × tokens/s ÷ the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s; `--peak_tflops`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from minigpt.config import get_preset
from minigpt.data import load_data
from minigpt.layers import flops_per_token
from minigpt.train import train

DENSE_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def time_reference(preset_name: str, steps: int) -> dict:
    """The nanoGPT-style model of benchmarks/throughput.py (no padding, GELU, learned positions, tied head),
    trained as nanoGPT trains it: compiled, bf16 autocast, fused AdamW, random tokens. The comparator."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from throughput import RefGPT

    p = get_preset(preset_name)
    m, t = p.model, p.train
    model = RefGPT(m.vocab_size, m.block_size, m.n_layer, m.n_embd, m.n_head).cuda()
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-4, betas=(0.9, 0.95), fused=True)
    fwd = torch.compile(model)
    data = torch.randint(0, m.vocab_size, (t.grad_accum, t.batch_size, m.block_size + 1), device="cuda")

    def step() -> None:
        for i in range(t.grad_accum):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                _, loss = fwd(data[i, :, :-1].contiguous(), data[i, :, 1:].contiguous())
            (loss / t.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    ms = 1e3 * (time.perf_counter() - t0) / steps
    return {"ms_per_step": round(ms, 1), "tokens_per_s": round(t.batch_size * t.grad_accum * m.block_size / ms * 1e3),
            "fpt": flops_per_token(model, m.n_layer, m.block_size, m.n_embd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="gpt2-124m")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--variants", default="pre_ln,ngpt")
    ap.add_argument("--peak_tflops", type=float, default=None, help="dense bf16 peak (default: from the GPU name)")
    ap.add_argument("--reference", action="store_true", help="also time the nanoGPT-style reference model")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="config overrides for every variant, e.g. batch_size=32 grad_accum=2 pad_vocab_to=1")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU (on a CPU use benchmarks/throughput.py)")

    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in DENSE_BF16_TFLOPS.items() if k in name), None)
    if peak is None:
        raise SystemExit(f"unknown GPU {name!r}: pass --peak_tflops (its dense bf16 peak)")
    preset = get_preset(args.preset)
    tokenizer, batches = load_data(preset.train, preset.model.block_size)
    rows = {}
    for variant in args.variants.split(","):
        # eval only at the end; no checkpoints (no out_dir)
        overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}  # 32, 1e-3, true
        mcfg, tcfg = preset.configs(variant, steps=args.steps, eval_interval=args.steps, progress=False,
                                    **overrides)
        t0 = time.perf_counter()
        r = train(mcfg, tcfg, batches=batches, tokenizer=tokenizer)
        fpt = r.model.flops_per_token()
        rows[variant] = {
            "ms_per_step": round(r.ms_per_step, 1),
            "tokens_per_s": round(r.tokens_per_s),
            "gflops_per_token": round(fpt / 1e9, 3),
            "mfu": round(fpt * r.tokens_per_s / (peak * 1e12), 3),
            "final_train_loss": round(r.final_train_loss, 3),
            "wall_s_with_compile": round(time.perf_counter() - t0, 1),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        }
        torch.cuda.reset_peak_memory_stats()
        print(variant, rows[variant], flush=True)
    if args.reference:
        ref = time_reference(args.preset, args.steps)
        rows["nanogpt-ref"] = {"ms_per_step": ref["ms_per_step"], "tokens_per_s": ref["tokens_per_s"],
                               "mfu": round(ref["fpt"] * ref["tokens_per_s"] / (peak * 1e12), 3)}
        print("nanogpt-ref", rows["nanogpt-ref"], flush=True)
    t = preset.train
    print(json.dumps({"gpu": name, "peak_bf16_tflops": peak, "torch": torch.__version__, "preset": args.preset,
                      "tokens_per_step": t.batch_size * t.grad_accum * preset.model.block_size,
                      "steps": args.steps, "results": rows}, indent=2))


if __name__ == "__main__":
    main()

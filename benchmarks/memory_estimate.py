"""minigpt.memory's estimate of a training step's memory against the measured peak RSS of a short CPU run.

    python benchmarks/memory_estimate.py [--quick]

Prints JSON, one row per config: the estimate (`estimate_train_memory(...).total`), the measured increase of
the process's peak RSS over its RSS before `train` (data already loaded: the estimate leaves the corpus and
the interpreter out, as the check does), and estimate / measured. Each config runs in its own process (peak
RSS only grows). The configs cover SDPA's fused kernel (dropout 0) and its math path (dropout 0.1, where the
(B, H, T, T) probabilities are kept), LERP and SLERP nGPT, NormFormer with GELU. About 2 minutes on one core;
`--quick` runs the two smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

CONFIGS = [
    {"model": {"variant": "pre_ln", "block_size": 128}, "train": {"batch_size": 8}},  # cpu-tiny's shape
    {"model": {"variant": "normformer", "mlp": "gelu", "block_size": 512}, "train": {"batch_size": 16}},
    {"model": {"variant": "pre_ln", "block_size": 2048}, "train": {"batch_size": 8}},
    {"model": {"variant": "ngpt", "ngpt_update": "slerp", "block_size": 1024}, "train": {"batch_size": 8}},
    {"model": {"variant": "pre_ln", "block_size": 1024, "dropout": 0.1}, "train": {"batch_size": 8}},
]


def measure(spec: dict) -> dict:
    """Train 2 steps of `spec` (cpu-tiny's width and depth otherwise) in this process; estimate vs peak RSS."""
    import torch

    from minigpt import ModelConfig, TrainConfig
    from minigpt.data import load_data
    from minigpt.memory import estimate_train_memory, human
    from minigpt.train import train

    torch.set_num_threads(1)
    model = ModelConfig(**{"vocab_size": 84, "n_layer": 4, "n_head": 4, "n_embd": 128, "bias": False,
                           "mlp": "swiglu", "position": "rope", **spec["model"]})
    cfg = TrainConfig(**{"steps": 2, "eval_interval": 1000, "eval_batches": 1, "progress": False,
                         "tokenizer": "char", **spec["train"]})
    tokenizer, batches = load_data(cfg, model.block_size)
    before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    est = estimate_train_memory(model, cfg, "cpu", torch.float32)
    train(model, cfg, batches=batches, tokenizer=tokenizer)
    measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before  # ru_maxrss: kB on Linux
    return {"config": spec, "fused_attention": est.fused_attention, "estimate": human(est.total),
            "measured": human(measured), "estimate/measured": round(est.total / measured, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two smallest configs")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    print("[")
    specs = CONFIGS[:2] if args.quick else CONFIGS
    for i, spec in enumerate(specs):
        out = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], check=True,
                             capture_output=True, text=True).stdout
        print(" " + out.strip().splitlines()[-1] + ("," if i < len(specs) - 1 else ""), flush=True)
    print("]")


if __name__ == "__main__":
    main()

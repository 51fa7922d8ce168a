"""Memory of the prepared-corpus data path: resident set size (RSS) of this process before and after opening a
prepared DIR (`python -m minigpt prepare ...`) and drawing batches from its memory maps, next to what loading
train.bin into memory would cost. Prints JSON; never part of the tests.

    python benchmarks/prepared_memory.py DIR [--batches 1000] [--batch_size 64] [--block_size 1024]

RSS counts the file pages a process has touched (VmRSS = anonymous + file-backed), so it shows both the
copies the loader makes (none) and the share of the corpus the random windows have paged in.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from minigpt.prepared import load_prepared, read_meta


def rss_mb() -> dict[str, float]:
    """VmRSS and its parts (RssAnon: the process's own memory; RssFile: mapped file pages), in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--block_size", type=int, default=1024)
    args = ap.parse_args()
    meta = read_meta(args.dir)
    before = rss_mb()
    t0 = time.perf_counter()
    tok, batches = load_prepared(args.dir, args.block_size, tokenizer=meta["tokenizer"]["name"])
    opened = rss_mb()
    t1 = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    for _ in range(args.batches):
        batches.sample("train", args.batch_size, g)
    sampled = rss_mb()
    t2 = time.perf_counter()
    loaded = np.fromfile(Path(args.dir) / "train.bin", dtype=meta["dtype"])  # what an in-memory loader holds
    in_memory = rss_mb()
    print(json.dumps({
        "dir": args.dir, "train_tokens": len(batches.train), "train_bin_mb": round(loaded.nbytes / 2**20, 1),
        "rss_mb_before": before, "rss_mb_after_open": opened,
        f"rss_mb_after_{args.batches}_batches": sampled, "rss_mb_after_np_fromfile": in_memory,
        "open_s (size + sha256 checks)": round(t1 - t0, 2),
        "sample_ms_per_batch": round((t2 - t1) / args.batches * 1e3, 3),
        "batch": [args.batch_size, args.block_size + 1],
    }, indent=1))


if __name__ == "__main__":
    main()

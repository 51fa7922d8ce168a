"""The training loop: AdamW, warmup + cosine schedule, clipping, eval, hooks, checkpoints, NaN guard.

One function, `train`, runs one model for `train_cfg.steps` optimizer steps and returns a `TrainResult`. It is
plain PyTorch, written to be read top to bottom; every variant goes through exactly the same code (the only
variant-specific call is `model.after_optimizer_step()`, a no-op on `GPTBase` that nGPT overrides to put its
weights back on the hypersphere, docs/design.md §3).

What a step does, in order::

    lr = lr_at(step, cfg)                          # linear warmup, then cosine to lr * min_lr_ratio
    for each of grad_accum micro-batches:          # data order from a generator of its own (seeded)
        loss = model(x, y) / grad_accum; loss.backward()
    hook.on_step(model, step, loss)                # gradient hooks: diagnostics read the raw gradients here
    grad_norm = clip_grad_norm_(params, grad_clip) # also the divergence signal for poisoned gradients
    if diverged: stop (keep the last good checkpoint) or skip this update
    optimizer.step(); model.after_optimizer_step()
    evaluate every eval_interval steps and at the last one -> on_eval(step, val_loss)
    the step's record (loss, lr, grad_norm, ms, tokens_per_s, val_loss) -> metrics.jsonl, result.records,
        on_step(record); checkpoint

The trainer publishes what it knows: `TrainResult.records` holds every step's record (the lines of
metrics.jsonl), and `on_step` / `on_eval` receive them as they happen, so the playground and the experiments
read the trainer's losses, divergence decisions, timings and evaluations instead of re-deriving them. Any hook
may raise `StopTraining` to end the run after the current step; `train` then returns normally with
`result.stopped` set (a Stop button, an experiment that has seen enough).

Steps are counted from 1: "step s" is the s-th optimizer update, the one that uses `lr_at(s)`; val losses
and checkpoints labelled s are taken after it.

Never losing work (issue 6): checkpoints are written atomically (temp file in the same folder, fsync,
os.replace) and read with `torch.load(weights_only=True)`; they hold everything an exact resume needs (model,
optimizer, step, the torch and batch-sampler RNG states, the history), so a 40-step run stopped after 20
(`stop_at`, Ctrl-C) and resumed is bitwise the same run as 40 steps straight on the CPU. (Resuming with a
different `steps` re-stretches the cosine schedule: allowed, but then no longer that run.) Ctrl-C finishes
the current step, saves, and raises `TrainingInterrupted` (a KeyboardInterrupt that carries the result). A
diverging run stops before the bad update is applied and never overwrites the last good checkpoint.

Multi-GPU / multi-node (issue 7): under ``torchrun`` the same function runs in every process, wrapped in
DistributedDataParallel; see `distributed.Dist` for what changes and why. Run alone, nothing changes.

Where the pieces live: this file is the loop; `train_parts.py` the pure pieces it calls (schedule, divergence
rule, device/dtype, optimizer, evaluation) and `TrainResult`; `checkpoint.py` the run folder (checkpoints,
metrics.jsonl, config.json); `distributed.py` the processes (DDP ranks, Ctrl-C). Their public names are
re-exported here, so `from minigpt.train import ...` keeps working.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import build_model
from .checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    CheckpointError,
    History,
    _check_resumable,
    _json_float,
    _load_model_state,
    _rng_state,
    _set_rng_state,
    _write_config,
    _write_text_atomic,
    checkpoint_state,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from .config import ConfigError, ModelConfig, TrainConfig
from .distributed import Dist, SigintGuard
from .memory import check_memory
from .outputs import TrainingWriteError, check_output_dir
from .progress import progress_bar
from .train_parts import (
    EXPLODE_FACTOR,
    StopTraining,
    TrainingInterrupted,
    TrainResult,
    _autocast,
    _hook_fns,
    divergence_reason,
    divergence_threshold,
    evaluate,
    lr_at,
    make_optimizer,
    resolve_device,
    resolve_dtype,
)

# the public names of the loop and, re-exported, of its pieces
__all__ = [
    "CHECKPOINT_FILE", "METRICS_FILE", "CONFIG_FILE", "EXPLODE_FACTOR", "CheckpointError", "TrainingInterrupted",
    "StopTraining", "TrainResult", "train", "evaluate", "lr_at", "divergence_threshold", "divergence_reason",
    "make_optimizer", "resolve_device", "resolve_dtype", "save_checkpoint", "load_checkpoint",
    "model_from_checkpoint",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- the loop


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out_dir: str | Path | None = None,
    hooks: Iterable[Any] = (),
    batches: Any = None,
    tokenizer: Any = None,
    resume: bool = False,
    *,
    model: nn.Module | None = None,
    label: str | None = None,
    stop_at: int | None = None,
    overwrite: bool = False,
    on_step: Callable[[dict[str, Any]], Any] | None = None,
    on_eval: Callable[[int, float], Any] | None = None,
) -> TrainResult:
    """Train `build_model(model_cfg)` for `train_cfg.steps` optimizer steps and return a TrainResult.

    - `out_dir`: where `ckpt.pt`, `metrics.jsonl` and `config.json` go (None: keep nothing on disk).
    - `hooks`: objects with `on_step(model, step, loss)` (or plain callables), called after backward and
      before clipping and the optimizer step, so they see the raw gradients of that step.
    - `on_step(record)`: called after every step with its record (the metrics.jsonl line; a diverged step's
      too); `on_eval(step, val_loss)` after every evaluation. Any hook may raise `StopTraining`.
    - `batches`/`tokenizer`: data already loaded (`data.load_data`); by default it is loaded from
      `train_cfg`. `model_cfg.vocab_size` is set from the tokenizer.
    - `resume`: continue `out_dir/ckpt.pt` up to `train_cfg.steps` (exactly: same data order and RNG).
      Without it, an existing checkpoint in `out_dir` is an error unless `overwrite`.
    - `model`: train this module instead of building one (e.g. the placement playground); it must accept
      `model_cfg`'s shapes. `label`: the progress-bar name. `stop_at`: stop (and checkpoint) after this step
      while keeping the `steps`-long schedule, to be continued with `resume`.

    Seeding: `torch.manual_seed(seed)` before the model is built (same init for the same config), and a
    separate generator seeded with `seed` draws the batches, so every variant sees the same data in the same
    order whatever its init or dropout consumes.

    Under torchrun (WORLD_SIZE > 1) every process calls this: the process group is created here and
    destroyed on the way out, also on errors; only rank 0 writes files. The global batch is batch_size x
    grad_accum x world_size sequences per step (`Dist`).
    """
    dist = Dist.setup(resolve_device(train_cfg.device))
    try:
        return _train(model_cfg, train_cfg, out_dir, hooks, batches, tokenizer, resume, model=model, label=label,
                      stop_at=stop_at, overwrite=overwrite, dist=dist, on_step=on_step, on_eval=on_eval)
    finally:
        dist.close()


def _train(model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path | None, hooks: Iterable[Any],
           batches: Any, tokenizer: Any, resume: bool, *, model: nn.Module | None, label: str | None,
           stop_at: int | None, overwrite: bool, dist: Dist, on_step: Callable[[dict[str, Any]], Any] | None = None,
           on_eval: Callable[[int, float], Any] | None = None) -> TrainResult:
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_FILE if out is not None else None
    if out is not None:
        check_output_dir(out)
    if resume and ckpt_path is None:
        raise ConfigError("resume=True needs out_dir: the folder whose ckpt.pt to continue")
    if resume and not ckpt_path.exists():
        raise CheckpointError(f"cannot resume: checkpoint {ckpt_path} does not exist")
    if ckpt_path is not None and not resume and not overwrite and ckpt_path.exists():
        raise CheckpointError(
            f"{ckpt_path} already exists; resume it (--resume), pass overwrite=True (--overwrite) to start "
            f"over, or choose another output folder"
        )
    if stop_at is not None and stop_at < 1:
        raise ConfigError(f"stop_at={stop_at!r} is not valid; it must be an integer >= 1")

    # --- data and config
    if batches is None:
        from .data import load_data

        with dist.local_main_first():  # one process per node fills the token cache, then the others read it
            loaded_tok, batches = load_data(train_cfg, model_cfg.block_size)
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    if tokenizer is not None and model_cfg.vocab_size != tokenizer.vocab_size:
        model_cfg = dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size)
    data_block = getattr(batches, "block_size", model_cfg.block_size)
    if data_block > model_cfg.block_size:
        raise ConfigError(f"the batches have block_size={data_block} but the model's block_size is "
                          f"{model_cfg.block_size}")

    # --- model, optimizer, RNG
    device = dist.device  # resolve_device(train_cfg.device); with several GPUs per node, this rank's own
    amp_dtype = resolve_dtype(train_cfg.dtype, device)
    # refuse a step that cannot fit before allocating anything (memory.py has the estimate's formula)
    check_memory(model_cfg, train_cfg, device, amp_dtype,
                 n_params=None if model is None else sum(p.numel() for p in model.parameters()))
    if device.type == "cuda":  # float32 matmuls (outside autocast) on tensor cores: TF32, the usual trade
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(train_cfg.seed)
    raw_model = model if model is not None else build_model(model_cfg)
    raw_model.to(device).train()
    optimizer = make_optimizer(raw_model, train_cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(train_cfg.seed)
    hist = History()
    start_step = 0
    result = TrainResult(raw_model, model_cfg, train_cfg, tokenizer, out_dir=out)

    if resume:
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, model_cfg, train_cfg, tokenizer, ckpt_path, dist.world_size)
        _load_model_state(raw_model, ckpt["model"], ckpt_path)
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            _set_rng_state(ckpt["rng"], generator)
            hist = History(**ckpt["history"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path} has an unusable optimizer/RNG/history: {e}") from e
        start_step = int(ckpt["step"])
        result.checkpoint, result.checkpoint_step = ckpt_path, start_step
        saved_steps = ckpt["train_config"].get("steps")
        if saved_steps != train_cfg.steps and dist.is_main:
            # Allowed (extending a finished run is a real use), but it is not the run the checkpoint was
            # part of: the cosine schedule is stretched over the new total. Say so rather than let a user
            # believe `--steps 20` + `--steps 40 --resume` equals 40 straight (use --stop_at for that).
            warnings.warn(f"resuming {ckpt_path} (trained for steps={saved_steps}) with steps={train_cfg.steps}: "
                          f"the LR schedule is re-stretched from step {start_step}, so this is not the run a "
                          f"straight {train_cfg.steps}-step training gives (for that, stop with --stop_at)",
                          stacklevel=2)

    fwd_model = raw_model
    if train_cfg.compile if train_cfg.compile is not None else device.type == "cuda":
        fwd_model = torch.compile(raw_model)
    if dist.enabled:  # after the resume: DDP starts by broadcasting rank 0's weights to the other ranks
        from torch.nn.parallel import DistributedDataParallel

        fwd_model = DistributedDataParallel(fwd_model, device_ids=[device.index] if device.type == "cuda" else None)
    hook_fns = _hook_fns(hooks)
    # Under DDP each rank evaluates its slice of the global val batches; the mean of the slices' means is
    # then the loss one process gets on the whole batches (equal slices), up to summation order.
    val_batches = [(dist.shard(x).to(device), dist.shard(y).to(device))
                   for x, y in batches.val_batches(train_cfg.eval_batches, train_cfg.batch_size * dist.world_size)]
    params = [p for p in raw_model.parameters() if p.requires_grad]
    vocab = model_cfg.vocab_size
    tokens_per_step = train_cfg.batch_size * train_cfg.grad_accum * dist.world_size * data_block
    end_step = train_cfg.steps if stop_at is None else min(stop_at, train_cfg.steps)

    # --- files (rank 0 only: the other ranks hold the same weights and would write the same files)
    writes = out if dist.is_main else None
    metrics_file = None
    if writes is not None:
        out.mkdir(parents=True, exist_ok=True)
        # On resume the metrics are rewritten from the checkpoint: lines logged after it (the steps a crash
        # lost) must not appear twice.
        lines = "".join(json.dumps(r) + "\n" for r in hist.metrics)
        _write_text_atomic(out / METRICS_FILE, lines)
        metrics_file = open(out / METRICS_FILE, "a", encoding="utf-8")  # closed by _finish / on error
        compiled = fwd_model is not raw_model
        _write_config(out, raw_model, model_cfg, train_cfg, tokenizer, device, amp_dtype, compiled,
                      dist.world_size)

    def checkpoint(step: int, rng: dict[str, Any]) -> None:
        if ckpt_path is None or not dist.is_main:
            return
        state = checkpoint_state(step, model_cfg, train_cfg, tokenizer, raw_model, optimizer, scaler, rng, hist,
                                 dist.world_size)
        save_checkpoint(state, ckpt_path)
        result.checkpoint, result.checkpoint_step = ckpt_path, step

    bar = progress_bar(train_cfg.steps, initial=start_step, desc=label or model_cfg.variant,
               disable=not (train_cfg.progress and dist.is_main), dynamic_ncols=True, leave=True)
    step_ms: list[float] = []
    step = start_step
    last_val: float | None = hist.val[-1][1] if hist.val else None
    updating = False  # inside optimizer.step()/after_optimizer_step(): state is not consistent
    rng: dict[str, Any] | None = None  # RNG state matching `step`, while the generator has moved past it
    try:
        with SigintGuard() as sigint:
            while step < end_step:
                rng = _rng_state(generator)  # the state a checkpoint of the last completed step needs
                s = step + 1
                t0 = time.perf_counter()
                lr = lr_at(s, train_cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss_value = _forward_backward(fwd_model, batches, generator, train_cfg, device, amp_dtype,
                                               scaler, dist)
                loss_value = dist.mean(loss_value)  # the NaN guard below must decide the same on every rank
                if scaler.is_enabled():
                    scaler.unscale_(optimizer)  # hooks and clipping see true gradients
                hook_t0 = time.perf_counter()
                for fn in hook_fns:
                    fn(raw_model, s, loss_value)
                hook_s = time.perf_counter() - hook_t0  # not the model's time: left out of `ms`
                max_norm = train_cfg.grad_clip if train_cfg.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True).item()
                if hist.initial_loss is None and math.isfinite(loss_value):
                    hist.initial_loss = loss_value
                # With fp16 the GradScaler owns inf gradients (it skips that step and lowers the scale).
                reason = divergence_reason(
                    loss_value, None if scaler.is_enabled() else grad_norm,
                    divergence_threshold(vocab, hist.initial_loss),
                )
                record: dict[str, Any] = {"step": s, "loss": _json_float(loss_value), "lr": lr,
                                          "grad_norm": _json_float(grad_norm)}
                if reason is not None and train_cfg.on_nan == "stop":
                    record.update(diverged=True, reason=reason)
                    if metrics_file is not None:
                        metrics_file.write(json.dumps(record) + "\n")
                    result.diverged, result.diverged_step = True, s
                    result.message = _diverged_message(s, reason, lr, result, saving=out is not None)
                    hist.metrics.append(record)
                    if on_step is not None:
                        on_step(record)
                    break
                if reason is not None:  # on_nan == "skip": drop this update, keep going
                    optimizer.zero_grad(set_to_none=True)
                    record.update(skipped=True, reason=reason)
                    hist.skipped.append(s)
                else:
                    updating = True
                    scaler.step(optimizer)
                    scaler.update()
                    raw_model.after_optimizer_step()  # nGPT: back onto the hypersphere; others: nothing
                    updating = False
                ms = (time.perf_counter() - t0 - hook_s) * 1000.0
                step, rng = s, None  # from here the generator's current state belongs to `step`
                step_ms.append(ms)
                hist.losses.append(loss_value)
                record["ms"] = round(ms, 3)
                record["tokens_per_s"] = round(tokens_per_step / (ms / 1000.0), 1) if ms > 0 else None
                if s % train_cfg.eval_interval == 0 or s == train_cfg.steps:
                    last_val = dist.mean(evaluate(raw_model, val_batches, device, amp_dtype))
                    hist.val.append([s, last_val])
                    record["val_loss"] = _json_float(last_val)
                hist.metrics.append(record)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                interval = train_cfg.checkpoint_interval
                if (interval and s % interval == 0) or s == end_step:
                    checkpoint(s, _rng_state(generator))
                if on_eval is not None and "val_loss" in record:
                    on_eval(s, last_val)
                if on_step is not None:
                    on_step(record)
                postfix = {"loss": f"{loss_value:.3f}"}
                if last_val is not None:
                    postfix["val"] = f"{last_val:.3f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if dist.any(sigint.requested):  # every rank stops after the same step
                    raise KeyboardInterrupt
    except StopTraining:  # a hook asked to stop: keep the last completed step, as for Ctrl-C, and return
        if not updating and step > start_step and result.checkpoint_step != step:
            checkpoint(step, rng if rng is not None else _rng_state(generator))
        result.stopped = True
        result.message = f"stopped by a hook after step {step}"
    except KeyboardInterrupt as e:
        # Ctrl-C (or a hook raising KeyboardInterrupt): save the last completed step. If the interrupt
        # landed inside the update itself (a second Ctrl-C), the weights are half-updated: keep the old
        # checkpoint rather than write an inconsistent one.
        if not updating and step > start_step and result.checkpoint_step != step:
            checkpoint(step, rng if rng is not None else _rng_state(generator))
        _finish(result, hist, step, step_ms, tokens_per_step, writes, metrics_file, bar)
        result.interrupted = True
        result.message = str(TrainingInterrupted(result))
        raise TrainingInterrupted(result) from e
    except OSError as e:  # a full disk mid-run: stop now, naming the checkpoint to resume from
        raise TrainingWriteError.stop(e, step, out, result, bar, metrics_file) from e
    except BaseException:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
        raise
    else:
        dist.check_in_sync(raw_model)
    _finish(result, hist, step, step_ms, tokens_per_step, writes, metrics_file, bar)
    return result


def _forward_backward(model: nn.Module, batches: Any, generator: torch.Generator, cfg: TrainConfig,
                      device: torch.device, dtype: torch.dtype, scaler: torch.amp.GradScaler,
                      dist: Dist | None = None) -> float:
    """Accumulate the gradients of `grad_accum` micro-batches; return the step's mean loss (this rank's).
    Each micro-loss is divided by grad_accum so the summed gradient equals that of one batch grad_accum times
    larger. Under DDP every rank draws the global micro-batch and keeps its slice (`Dist.shard`), and the
    gradient all-reduce runs only in the last micro-step's backward (`no_sync` before it: same sum, 1/grad_accum
    of the traffic)."""
    dist = dist if dist is not None else Dist()
    total = torch.zeros((), device=device)
    for i in range(cfg.grad_accum):
        x, y = batches.sample("train", cfg.batch_size * dist.world_size, generator)
        x, y = dist.shard(x), dist.shard(y)
        if device.type == "cuda":  # page-locked host memory: the copy below runs asynchronously
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last = i == cfg.grad_accum - 1
        with contextlib.nullcontext() if last or not dist.enabled else model.no_sync():
            with _autocast(device, dtype):
                _, loss = model(x, y)
                loss = loss / cfg.grad_accum
            scaler.scale(loss).backward()
        total += loss.detach().float()
    return total.item()


def _finish(result: TrainResult, hist: History, step: int, step_ms: list[float], tokens_per_step: int,
            out: Path | None, metrics_file: Any, bar: Any) -> None:
    """Fill in the result, close the bar and the metrics file, and write the final config.json."""
    bar.close()
    if metrics_file is not None:
        metrics_file.close()
    result.step = step
    result.losses = list(hist.losses)
    result.val = [(int(s), float(v)) for s, v in hist.val]
    result.skipped_steps = list(hist.skipped)
    result.records = list(hist.metrics)
    # The first step of an invocation pays one-off costs (allocator warm-up, torch.compile): leave it out.
    timed = step_ms[1:] if len(step_ms) > 1 else step_ms
    if timed:
        result.ms_per_step = sum(timed) / len(timed)
        result.tokens_per_s = tokens_per_step / (result.ms_per_step / 1000.0)
    if out is not None:
        path = out / CONFIG_FILE
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cfg = {}
        cfg["result"] = result.summary()
        _write_text_atomic(path, json.dumps(cfg, indent=2) + "\n")


def _diverged_message(step: int, reason: str, lr: float, result: TrainResult, saving: bool = True) -> str:
    what = f"training diverged at step {step}: {reason} at lr {lr:.3g}; the update was not applied"
    if not saving:  # no output folder (the playground, the experiments): no checkpoint to point to or to keep
        return what
    if result.checkpoint is not None:
        where = f"the last good checkpoint is {result.checkpoint} (step {result.checkpoint_step})"
    else:
        where = "no checkpoint was written before it (set checkpoint_interval to keep one)"
    return f"{what}; {where}"

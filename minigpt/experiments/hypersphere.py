"""§6.6: nGPT's geometry (norms, cosines, conditioning, learned scales, a 3-D projection) and LERP vs SLERP.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import diagnostics as D
from ..config import ConfigError
from ..ngpt import lerp_update, slerp
from ..train import (
    resolve_device,
    train,
)
from ._common import _configs, _data, _preset_name


def _angle(a: Tensor, b: Tensor) -> Tensor:
    """Angle (radians) between unit vectors along the last dim: 2 atan2(||a - b||, ||a + b||), accurate
    for the tiny angles LERP and SLERP differ by (arccos of a dot product is not)."""
    a, b = a.double(), b.double()
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


@torch.no_grad()
def lerp_slerp_gap(model: nn.Module, x: Tensor) -> dict[str, list[float]]:
    """For an nGPT model and a batch, per block and sublayer: the mean angle (radians) between the LERP and
    the SLERP update computed from the *same* h, target Norm(h_X) and |α| ("gap"), and the mean angle the
    update moves h ("step"). The model's own update (whichever it uses) carries h to the next sublayer.

    Returns {"attn_gap", "attn_step", "mlp_gap", "mlp_step"}: one number per layer each."""
    out: dict[str, list[float]] = {k: [] for k in ("attn_gap", "attn_step", "mlp_gap", "mlp_step")}
    states = D.hidden_states(model, x)
    for block, h in zip(model.blocks, states[:-1], strict=True):
        for part, sub, alpha in (("attn", block.attn, block.alpha_attn), ("mlp", block.mlp, block.alpha_mlp)):
            target = F.normalize(sub(h), dim=-1)
            a = alpha().abs()
            by_lerp, by_slerp = lerp_update(h, target, a), slerp(h, target, a)
            out[f"{part}_gap"].append(_angle(by_lerp, by_slerp).mean().item())
            out[f"{part}_step"].append(_angle(h, block.update(h, target, a)).mean().item())
            h = block.update(h, target, a)
    return out


@dataclass
class HypersphereResult:
    """nGPT's geometry after `steps` steps, beside pre-LN's, and LERP vs SLERP. Keys of the dicts are the run
    labels ("pre_ln", "ngpt-lerp", "ngpt-slerp").

    embedding_norms   ||row|| of the input embedding, one per token
    hidden_norms      mean ||h|| entering block 0 and leaving each block (diagnostics.residual_norms)
    max_norm_error    max over tokens and layers of | ||h|| - 1 | (nGPT: rounding only)
    cosines           pairwise cosines of the input-embedding rows (for a histogram)
    embedding_cond    condition number of the embedding covariance E^T E / V
    attention_cond    condition number of each head's W_q W_k^T, (L, n_head) as nested lists
    scalars           nGPT LERP run: mean |value| per layer of alpha_attn, alpha_mlp, s_qk, s_u, s_nu; and s_z
    projection        3-D PCA projection of a few tokens' hidden states, layer by layer (LERP run)
    projections       the same for every run (pre-LN's states divided by their norm; their norms kept)
    step_angles       per run, the angle (radians) each block turns each token's state, (L, T) nested lists
    gap               lerp_slerp_gap on the LERP-trained model
    """

    preset: str
    steps: int
    labels: list[str]
    embedding_norms: dict[str, list[float]] = field(default_factory=dict)
    hidden_norms: dict[str, list[float]] = field(default_factory=dict)
    max_norm_error: dict[str, float] = field(default_factory=dict)
    cosines: dict[str, Tensor] = field(default_factory=dict)
    embedding_cond: dict[str, float] = field(default_factory=dict)
    attention_cond: dict[str, list[list[float]]] = field(default_factory=dict)
    scalars: dict[str, list[float]] = field(default_factory=dict)
    projection: D.SphereProjection | None = None
    projections: dict[str, D.SphereProjection] = field(default_factory=dict)
    step_angles: dict[str, list[list[float]]] = field(default_factory=dict)
    projection_tokens: list[str] = field(default_factory=list)
    projection_positions: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    ms_per_step: dict[str, float] = field(default_factory=dict)
    gap: dict[str, list[float]] = field(default_factory=dict)

    @property
    def final_val(self) -> dict[str, float]:
        return {k: (v[-1][1] if v else float("nan")) for k, v in self.val.items()}


def hypersphere(
    preset: str | None = None,
    steps: int = 200,
    n_tokens: int = 6,
    prompt: str | None = None,
    include_pre_ln: bool = True,
    eval_interval: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> HypersphereResult:
    """§6.6: train nGPT with the LERP update and with the exact SLERP update (same seed, data, LR), and
    pre-LN for contrast; measure the geometry of each (see HypersphereResult) and the distance between the
    LERP and the SLERP update on the LERP model's own hidden states. The projection follows `n_tokens`
    positions of `prompt` (default: a validation window), evenly spaced, through every layer. Validation
    loss every `eval_interval` steps (default steps // 10)."""
    name = _preset_name(preset)
    runs: list[tuple[str, str, dict[str, Any]]] = [("ngpt-lerp", "ngpt", {"ngpt_update": "lerp"}),
                                                    ("ngpt-slerp", "ngpt", {"ngpt_update": "slerp"})]
    if include_pre_ln:
        runs.insert(0, ("pre_ln", "pre_ln", {}))
    clash = [k for k in ("ngpt_update",) if k in overrides]
    if clash:
        raise ConfigError("hypersphere runs both nGPT updates; do not override ngpt_update")
    out = HypersphereResult(preset=name, steps=steps, labels=[r[0] for r in runs])
    probe_x: Tensor | None = None
    for label, variant, extra in runs:
        model_cfg, train_cfg = _configs(name, variant, {**overrides, **extra}, steps=steps, progress=progress,
                                        eval_interval=eval_interval or max(1, steps // 10))
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        device = resolve_device(train_cfg.device)
        if probe_x is None:
            if prompt is not None:
                ids = tokenizer.encode(prompt)[: model_cfg.block_size]
                probe_x = torch.tensor([ids], dtype=torch.long)
            else:
                probe_x = batches.val_batches(1, 1)[0][0]
        x = probe_x.to(device)
        result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, label=label)
        model = result.model.eval()
        out.losses[label] = list(result.losses)
        out.val[label] = list(result.val)
        out.ms_per_step[label] = result.ms_per_step
        emb = model.wte.weight.detach()
        out.embedding_norms[label] = D.row_norms(emb).cpu().tolist()
        out.cosines[label] = D.pairwise_cosines(emb.cpu())
        out.embedding_cond[label] = D.embedding_condition_number(emb.cpu())
        out.attention_cond[label] = D.attention_condition_numbers(model).tolist()
        states = D.hidden_states(model, x)
        out.hidden_norms[label] = [s.norm(dim=-1).mean().item() for s in states]
        out.max_norm_error[label] = max((s.norm(dim=-1) - 1).abs().max().item() for s in states)
        n = min(n_tokens, x.size(1))
        pos = torch.linspace(0, x.size(1) - 1, n).round().long()
        out.projections[label] = D.sphere_projection([s[0, pos].cpu() for s in states])
        out.step_angles[label] = D.step_angles([s[0].cpu() for s in states]).tolist()
        out.projection_tokens = [tokenizer.decode([int(t)]) for t in x[0, pos].tolist()]
        out.projection_positions = pos.tolist()
        if label == "ngpt-lerp":
            scal = D.ngpt_scalars(model)
            out.scalars = {k: [v.abs().mean().item() for v in vals] for k, vals in scal.items()}
            out.projection = out.projections[label]
            out.gap = lerp_slerp_gap(model, x)
        model.train()
    return out

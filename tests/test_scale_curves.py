"""The claim-vs-scale experiments: their statistics, the committed full-tier results (they load, carry the
parameters the code would use and say what produced them), the depth law live, and compare's seed noise."""

from __future__ import annotations

import json
import math
import re

import pytest

from minigpt import scale_curves as S
from minigpt.compare import CompareRow, run_compare, seed_noise
from minigpt.config import ConfigError
from minigpt.scale_plots import RESULTS_DIR, load_result, plot_result


def test_band_statistics_and_unreached_targets():
    b = S.band([1.0, 2.0, 3.0])
    assert (b["mean"], b["std"], b["min"], b["max"]) == (2.0, 1.0, 1.0, 3.0)
    assert S.band([2.5])["std"] == 0.0
    never = S.band([1.0, math.inf])  # a run that never reached the target is not averaged away
    assert math.isnan(never["mean"]) and never["values"] == [1.0, math.inf]


def test_loglog_slope_recovers_a_power_law():
    xs = [2, 4, 8, 16]
    assert S.loglog_slope(xs, [3 * x**0.5 for x in xs]) == pytest.approx(0.5)
    assert S.loglog_slope(xs, [0.1 * x**-1.0 for x in xs]) == pytest.approx(-1.0)


def test_unknown_experiment_or_tier_names_the_choices():
    with pytest.raises(ConfigError, match="budget, context, normformer_recipe, depth_law"):
        S.run("speed", "ci")
    with pytest.raises(ConfigError, match="tier='huge'.*ci, full"):
        S.run("budget", "huge")


def test_gradient_ratio_at_xavier_init_grows_as_sqrt_depth():
    """Xiong et al. 2020, Thm 1, live on small models: post-LN / pre-LN gradient of the last FFN matrix at
    Xavier init, averaged over 4 inits, has a log-log slope near 1/2 in the depth (committed full tier:
    docs/results/depth_law.json)."""
    shape = dict(n_embd=32, n_head=2, block_size=32, batch_size=4)
    depths = [2, 4, 8, 16]
    ratios = []
    for L in depths:
        rs = [S._grad_ratio("cpu-tiny", L, seed, shape, n_batches=1) for seed in range(4)]
        ratios.append(sum(r["post_ln"] for r in rs) / sum(r["pre_ln"] for r in rs))
    assert 0.35 < S.loglog_slope(depths, ratios) < 0.7


@pytest.mark.parametrize("name", list(S.EXPERIMENTS))
def test_committed_full_tier_results_carry_the_code_s_configs(name):
    record = load_result(name)
    assert record["name"] == name and record["tier"] == "full"
    # the parameters the code would run today (JSON round trip: tuples become lists)
    assert record["params"] == json.loads(json.dumps(S.TIERS[name]["full"]))
    assert re.fullmatch(r"python -m minigpt experiments .*--tier full.*", record["command"])
    assert name in record["command"] or "--only" not in record["command"]
    assert re.fullmatch(r"[0-9a-f]{40}\+?", record["commit"])
    assert {"cpu", "cores", "torch", "device"} <= set(record["machine"])
    assert (RESULTS_DIR / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    params, data = record["params"], record["data"]
    if name == "budget":
        assert [p["budget"] for p in data["points"]] == params["budgets"]
        assert all(len(p["speedup"]["values"]) == len(params["seeds"]) >= 3 for p in data["points"])
    elif name == "context":
        assert [p["block_size"] for p in data["points"]] == params["context_lengths"]
        assert all(p["block_size"] * p["batch_size"] == params["tokens_per_step"] for p in data["points"])
        assert all(len(p["speedup"]["values"]) == len(params["seeds"]) >= 3 for p in data["points"])
    elif name == "normformer_recipe":
        assert set(data["final"]) == {f"{v}/{i}" for v in ("pre_ln", "normformer") for i in ("gpt2", "fairseq")}
        assert all(len(f["val"]["values"]) == len(params["seeds"]) >= 3 for f in data["final"].values())
        assert all(sw["lrs"] == params["lrs"] for sw in data["sweep"].values())
    else:
        assert [g["n_layer"] for g in data["grad"]] == params["depths"]
        assert 0.35 < data["slope"] < 0.65, "Xiong et al. Thm 1: the ratio grows as sqrt(L)"
    plot_result(record)  # the notebooks draw it beside the live run


def test_ci_tier_runs_the_same_code_path_and_plots():
    record = {"name": "depth_law", "tier": "ci", "params": S.TIERS["depth_law"]["ci"],
              "data": S.run("depth_law", "ci")}
    assert [g["n_layer"] for g in record["data"]["grad"]] == S.TIERS["depth_law"]["ci"]["depths"]
    assert all(len(p) == len(S.TIERS["depth_law"]["ci"]["depths"]) for p in record["data"]["train"].values())
    plot_result(record)


def _row(label: str, vals: list[float]) -> CompareRow:
    return CompareRow(label, label, 0, 1e-3, 0.0, sum(vals) / len(vals), 0.0, 0.0, val_seeds=vals)


def test_compare_report_says_which_differences_are_within_seed_noise():
    rows = [_row("c", [2.30, 2.31]), _row("b", [2.03, 2.05]), _row("a", [2.00, 2.04])]
    lines = seed_noise(rows)  # ranked by mean val loss: a (2.02), b (2.04), c (2.305)
    assert len(lines) == 2
    assert lines[0].startswith("- a < b by 0.0200") and "within seed noise" in lines[0]  # a's range: 0.04
    assert lines[1].startswith("- b < c by 0.2650") and "beyond seed noise" in lines[1]


def test_compare_with_two_seeds_reports_means_ranges_and_the_verdict(tmp_path):
    tiny = dict(steps=6, n_layer=1, n_embd=32, n_head=2, block_size=16, batch_size=2, eval_batches=1,
                eval_interval=3, progress=False)
    res = run_compare("cpu-tiny", tiny, ["pre_ln", "ngpt-lerp"], tmp_path / "cmp", seeds=2)
    for row in res.rows:
        assert len(row.val_seeds) == 2 and row.val_seeds[0] != row.val_seeds[1]
        assert row.final_val_loss == pytest.approx(sum(row.val_seeds) / 2)
        assert row.val_seeds[0] == pytest.approx(res.results[row.label].final_val_loss)  # first seed: the files
    assert "seed range" in res.table.splitlines()[0]
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Seed noise (2 seeds per run)" in report
    assert re.search(r"- (pre_ln < ngpt-lerp|ngpt-lerp < pre_ln) by [0-9.]+: .*seed noise.* \(larger seed range", report)
    assert "docs/results/" in report
    assert sorted(d.name for d in (tmp_path / "cmp").iterdir() if d.is_dir()) == ["ngpt-lerp", "pre_ln"]
    with pytest.raises(ConfigError, match="seeds=0"):
        run_compare("cpu-tiny", tiny, ["pre_ln"], tmp_path / "bad", seeds=0)

"""The README's numbers cannot go stale: every number in its prose is tied to the value it quotes.

- "What it shows": docs/figures/numbers.md, written by `python -m minigpt figures` with the figures.
- "Claims vs scale": the paragraph under each figure, to that figure's docs/results/<name>.json.
- "Checked against": the table's max |Δ logits| column is asserted by tests/test_peers.py, which measures it;
  its versions are the ones CI installs.
- Everywhere else: a value computed here from the code (presets, constants, the corpus), or a measurement a
  command wrote to a file: benchmarks/readme_measurements.json (timings, memory), benchmarks/results.json,
  benchmarks/gpu_results.md.

A README number must be one of its section's values at the precision it is quoted (2.380 for 2.3801; 1.4M for
1,408,750). What is not a measurement (paper years, the papers' own numbers, equations, an example's arithmetic)
is listed below with why. (The notebooks' side: tests/test_notebook_teaching.py.)"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from minigpt import prepare, prepared
from minigpt.compare import run_compare
from minigpt.config import get_preset
from minigpt.experiments import CPU_SCALE
from minigpt.playground.controls import CPU_DEFAULTS, DEFAULT_STEPS
from minigpt.registry import RUNS

from . import test_ddp, test_peers
from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# a number (1,492; 0.81; 4e-3; 1.4M; 0.82x): not part of a word, a version (2.13.0) or a longer number
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e[+-]?\d+)?)([kMG]\b)?(?=x\b|(?!\w|\.\d))")
SCALE = {None: 1, "": 1, "k": 1e3, "M": 1e6, "G": 1e9}

# Numbers that are not measurements: {text as it stands in the README: why}
NOT_MEASURED = {
    "et al. 2017": "a paper's year", "et al. 2019": "a paper's year", "et al. 2020": "a paper's year",
    "et al. 2021": "a paper's year", "et al. 2024": "a paper's year",
    "sin((1−α)θ)": "an equation (SLERP)",
    "4-20x": "the nGPT paper's reported speedup range",
    "1k-8k tokens": "the nGPT paper's context lengths",
    "4x/10x/20x at 1k/4k/8k tokens": "the nGPT paper's speedups at its context lengths",
    "N(0, d^-1/2)": "fairseq's init, an equation",
    "Theorem 1": "Xiong et al.'s theorem number",
    "slope 1/2": "Xiong et al.'s √L law, an equation",
    "Fig. 5": "NormFormer's figure number",
    "2 ranks × `--batch_size 4` is the run 1 process × `--batch_size 8`": "an example of the batch arithmetic",
    "2 CPU processes": "tests/test_ddp.py's two torchrun workers (ARGS: --nproc_per_node 2)",
}


def _strip(text: str, not_measured: dict[str, str] | None = None) -> str:
    """Prose only: no code blocks, inline code, link targets, headings' anchors, list markers, names."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    for phrase in NOT_MEASURED if not_measured is None else not_measured:
        text = text.replace(phrase, "")
    text = re.sub(r"`[^`]*`", "", text)  # code: file names, commands, flags
    text = re.sub(r"^\d+\. ", "", text, flags=re.M)  # numbered lists
    text = re.sub(r"GPT-2|notebooks? 0\d(?: and 0\d)?|\bW[₁₂]", "", text)  # names, not quantities
    return text


def numbers(text: str, not_measured: dict[str, str] | None = None) -> list[tuple[str, float]]:
    """(as quoted, value) of every number in the prose of `text`, without the phrases of `not_measured`
    (default: the README's NOT_MEASURED): '1.4M' -> ('1.4M', 1.4e6)."""
    return [(n + (s or ""), float(n.replace(",", "")) * SCALE[s])
            for n, s in NUMBER.findall(_strip(text, not_measured))]


def matches(quoted: str, value: float) -> bool:
    """`value` printed at the precision of `quoted` is `quoted` (2.380 vs 2.3801; 1.2e-7 vs 1.19e-07; 1.4M vs
    1,408,750; 6.4 vs 385 s / 60)."""
    if not math.isfinite(value):
        return False
    mantissa, suffix = (quoted[:-1], quoted[-1]) if quoted[-1] in "kMG" else (quoted, "")
    mantissa = mantissa.replace(",", "")
    value = value / SCALE[suffix]
    if "e" in mantissa.lower():
        digits = len(mantissa.lower().split("e")[0].replace(".", "").lstrip("0"))
        return f"{value:.{max(digits, 1) - 1}e}" == f"{float(mantissa):.{max(digits, 1) - 1}e}"
    q = Decimal(mantissa)
    return abs(value) < 1e15 and any(Decimal(repr(value)).quantize(q, rounding=r) == q  # 910.5 is 910 or 911
                                     for r in (ROUND_HALF_EVEN, ROUND_HALF_UP))


def section(title: str, text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end != -1 else len(text)]


def flatten(obj, out: list[float] | None = None) -> list[float]:
    """Every number in a JSON value, and the length of every list (3 seeds, 8 inits)."""
    out = [] if out is None else out
    if isinstance(obj, bool):
        return out
    if isinstance(obj, int | float):
        out.append(float(obj))
    elif isinstance(obj, dict):
        for v in obj.values():
            flatten(v, out)
    elif isinstance(obj, list):
        out.append(float(len(obj)))
        for v in obj:
            flatten(v, out)
    return out


# ------------------------------------------------------------------------------------------ the sources


def numbers_in_plain(text: str) -> list[tuple[str, float]]:
    return [(n, float(n.replace(",", ""))) for n, _ in NUMBER.findall(text)]


@functools.cache
def measured() -> dict[str, dict[str, float]]:
    """benchmarks/readme_measurements.json: each measurement's values, seconds (`_s`) also in minutes, millions
    (`_m`) also as a count (89M); and the numeric arguments of the commands it ran."""
    data = json.loads((ROOT / "benchmarks" / "readme_measurements.json").read_text())
    out = {}
    for name, m in data.items():
        values = {}
        for key, v in m["values"].items():
            for i, x in enumerate(v if isinstance(v, list) else [v]):
                values[f"{key}[{i}]" if isinstance(v, list) else key] = float(x)
                if key.endswith("_s"):
                    values[f"{key} in minutes"] = float(x) / 60
                if key.endswith("_m"):  # millions
                    values[f"{key} as a count"] = float(x) * 1e6
            if isinstance(v, list):
                values[f"len({key})"] = float(len(v))
        values.update({f"machine {k}": float(v) for k, v in m["machine"].items() if isinstance(v, int)})
        for command in m["commands"]:  # the arguments the measurement ran with: --repeats 3, --steps 20
            values.update({f"{command} {a}": float(n) for a, n in re.findall(r"(--\w+) (\d+)\b", command)})
        out[name] = values
    return out


@functools.cache
def computed() -> dict[str, dict[str, float]]:
    """Values computed from the code and the data, by topic."""
    import torch

    from minigpt import build_model
    from minigpt.data import load_data

    tiny, small, web, gpt2 = (get_preset(p) for p in ("cpu-tiny", "gpu-small", "gpu-web", "gpt2-124m"))
    _, batches = load_data(small.train, small.model.block_size)
    with torch.device("meta"):
        web_model = build_model(web.configs("pre_ln")[0])
        gpt2_model = build_model(gpt2.model)
    web_tokens = web.train.batch_size * web.train.grad_accum * web.model.block_size
    # benchmarks/gpu_results.md's H100 rows of gpt2-124m at gpu-web's micro-batch: "| ngpt, `batch_size=32 ...` |"
    micro = f"batch_size={web.train.batch_size} grad_accum={web.train.grad_accum}"
    same_batch_ms = {row.split("|")[1].split(",")[0].strip(): float(row.split("|")[2])
                     for row in (ROOT / "benchmarks" / "gpu_results.md").read_text().splitlines()
                     if row.startswith("|") and micro in row}
    corpus = (ROOT / "data" / "shakespeare.txt").read_text()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    from hypothesis import settings

    return {
        "presets": {
            "runs": len(RUNS), "cpu-tiny steps": tiny.train.steps,
            "default seeds": inspect.signature(run_compare).parameters["seeds"].default,
            "playground steps": DEFAULT_STEPS, "playground batch": CPU_DEFAULTS["cpu-tiny"]["batch_size"],
            "run_all seconds": results["wall_s"],
        },
        "ddp": {"loss tolerance": test_ddp.LOSS_TOL},
        "corpus": {
            "gpu-small steps": small.train.steps, "gpu-small train tokens": len(batches.train),
            "passes": small.train.steps * small.train.batch_size * small.model.block_size / len(batches.train),
            "val fraction %": 100 * prepare.AUTO_VAL_FRACTION, "val max tokens": prepare.AUTO_VAL_MAX_TOKENS,
            "sha256 limit GiB": prepared.VERIFY_SHA_MAX_BYTES / 2**30,
            "gpu-web params": sum(p.numel() for p in web_model.parameters()),
            "gpu-web GFLOP/token": web_model.flops_per_token() / 1e9,
            "gpt2-124m GFLOP/token": gpt2_model.flops_per_token() / 1e9,
            "gpu-web context": web.model.block_size, "gpu-web batch": web.train.batch_size,
            "gpu-web grad_accum": web.train.grad_accum, "gpu-web tokens/step": web_tokens,
            "gpu-web steps": web.train.steps, "gpu-web tokens": web.train.steps * web_tokens,
            **{f"gpt2-124m {v} ms/step at gpu-web's micro-batch": ms for v, ms in same_batch_ms.items()},
            **{f"gpu-web minutes at {v}'s ms/step": web.train.steps * ms / 60e3 for v, ms in same_batch_ms.items()},
        },
        "peers": {"tolerance": test_peers.TOL, "zero tolerance": test_peers.ZERO_TOL,
                  "factor": test_peers.README_FACTOR, "layers": TINY["n_layer"], "d_model": TINY["n_embd"],
                  "heads": TINY["n_head"], "T": TINY["block_size"]},
        "fuzz": {"default examples": settings.get_profile("minigpt").max_examples,
                 "long examples": settings.get_profile("long").max_examples},
        "data": {"shakespeare MB": len(corpus.encode()) / 1e6, "distinct characters": len(set(corpus))},
    }


# Where each section's numbers come from: topics of computed() and measurements of readme_measurements.json
SECTION_SOURCES = {
    "Run it": ["presets", "compare", "playground"],
    "Multi-GPU": ["ddp"],
    "Web-text corpus (GPU)": ["corpus", "prepare_memory"],
    "Checked against": ["peers"],
    "Test": ["ci", "ci_serial", "browser", "threads", "fuzz"],
    "Data": ["data"],
}
NO_NUMBERS = ["The variants", "Layout", "Adding a variant"]  # sections with no measured number


def pool(names: list[str]) -> dict[str, float]:
    out = {}
    for name in names:  # keys prefixed: two measurements both have a wall_s
        out.update({f"{name}: {k}": v for k, v in (computed() | measured()).get(name, {}).items()})
    return out


def untied(text: str, values: dict[str, float] | list[float]) -> list[str]:
    vals = list(values.values()) if isinstance(values, dict) else values
    return [q for q, _ in numbers(text) if not any(matches(q, v) for v in vals)]


# ------------------------------------------------------------------------------------------------- tests


def readme_sections() -> list[str]:
    return re.findall(r"^## (.+)$", README.read_text(), flags=re.M)


def test_every_section_has_a_source() -> None:
    known = set(SECTION_SOURCES) | set(NO_NUMBERS) | {"What it shows", "Claims vs scale: where each effect appears"}
    assert set(readme_sections()) <= known, set(readme_sections()) - known


@pytest.mark.parametrize("title", list(SECTION_SOURCES))
def test_section_numbers_are_computed_or_measured(title: str) -> None:
    text = section(title)
    if title == "Checked against":  # the max |Δ| column: each row asserted by the check it names (test_peers.py)
        text = re.sub(r"^(\|.*)\|[^|]*\|$", r"\1|", text, flags=re.M)
    missing = untied(text, pool(SECTION_SOURCES[title]))
    assert not missing, f"README '{title}': numbers tied to no computed or measured value: {missing}"


@pytest.mark.parametrize("title", NO_NUMBERS)
def test_sections_without_measurements(title: str) -> None:
    assert numbers(section(title)) == [], numbers(section(title))


def test_intro_has_no_untied_number() -> None:
    readme = README.read_text()
    intro = readme[: readme.index("\n## ")]
    assert numbers(intro) == [], numbers(intro)


def test_every_caption_number_is_in_numbers_md() -> None:
    numbers_md = (ROOT / "docs" / "figures" / "numbers.md").read_text()
    text = section("What it shows")
    text = re.sub(r"\bd(\d+)/T(\d+)/B(\d+)\b", "", text)  # the scale, checked on its own below
    quoted = numbers(text)
    assert len(quoted) >= 8, quoted  # the captions do quote numbers: the parser still finds them
    missing = untied(text, [v for _, v in numbers_in_plain(numbers_md)])
    assert not missing, f"README numbers not in docs/figures/numbers.md at the quoted precision: {missing}"


def claims_paragraphs() -> dict[str, str]:
    """docs/results/<name>.json -> the README paragraph under its figure."""
    text = section("Claims vs scale: where each effect appears")
    parts = re.split(r"!\[[^\]]*\]\(docs/results/(\w+)\.png\)", text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_claims_numbers_are_in_their_results() -> None:
    paragraphs = claims_paragraphs()
    assert set(paragraphs) == {p.stem for p in (ROOT / "docs" / "results").glob("*.json")}
    for name, text in paragraphs.items():
        values = flatten(json.loads((ROOT / "docs" / "results" / f"{name}.json").read_text()))
        missing = untied(text, values)
        assert not missing, f"README numbers under {name}.png that docs/results/{name}.json does not hold: {missing}"
    intro = section("Claims vs scale: where each effect appears").split("![")[0]
    every = [v for p in (ROOT / "docs" / "results").glob("*.json") for v in flatten(json.loads(p.read_text()))]
    assert untied(re.sub(r"\bd(\d+)/T(\d+)/B(\d+)\b", "", intro), every) == []


def test_scales_are_the_experiments_scale() -> None:
    readme = README.read_text()
    found = re.findall(r"\bd(\d+)/T(\d+)/B(\d+)\b", readme)
    assert len(found) >= 2, "the captions and the claims name the scale the figures ran at (dNN/TNN/BNN)"
    for d, t, b in found:
        assert (int(d), int(t), int(b)) == (CPU_SCALE["n_embd"], CPU_SCALE["block_size"], CPU_SCALE["batch_size"])


def test_checked_against_versions_are_what_ci_installs() -> None:
    """The peers' versions in the table are the ones the peers extra pins, torch's the one .ci/run installs."""
    import tomllib

    pins = dict(re.findall(r"([\w-]+)==([\d.]+)",
                           " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                                    ["optional-dependencies"]["peers"])))
    torch_pin = re.search(r"torch==([\d.]+)", (ROOT / ".ci" / "run").read_text()).group(1)
    text = section("Checked against")
    rows = [r.split("|")[1:-1] for r in text.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert rows
    for peer, version, *_ in rows:
        if "transformers `GPT2" in peer:
            assert version.strip() == pins["transformers"], peer
        elif "x-transformers" in peer:
            assert version.strip() == pins["x-transformers"], peer
        elif peer.strip().startswith("torch"):
            assert version.strip() == torch_pin, peer
        else:
            assert version.strip().startswith("commit "), peer
    assert f"torch {torch_pin}" in text


def test_the_check_can_fail() -> None:
    """A stale number is reported; names, versions, code and citations are not numbers."""
    assert matches("2.380", 2.3801) and matches("1.2e-7", 1.19e-07) and matches("0.03", 0.0305)
    assert matches("1.4M", 1_408_750) and matches("1,492", 1492) and matches("6.4", 385 / 60)
    assert not matches("1.2", 1.32) and not matches("4.5", 4.61) and not matches("1.5M", 1_408_750)
    assert [q for q, _ in numbers("at 0.705. A 0.81x speedup, 1.56e+01, 1.4M tokens, 1,492 MB, d64, GPT-2, "
                                  "torch 2.13.0, `--steps 500`, [a 3](x/4.png)")] == \
        ["0.705", "0.81", "1.56e+01", "1.4M", "1,492", "3"]
    assert untied("it took 98 s", {"wall": 97.6}) == [] and untied("it took 99 s", {"wall": 97.4}) == ["99"]

"""The README's timings and memory figures, measured by commands: each measurement runs the commands the README
names, and its numbers go to benchmarks/readme_measurements.json (the commands, the machine, the date, the
commit). tests/test_readme_numbers.py checks that every timing and memory figure the README quotes is one this
file holds, so a README number is either re-measured here or stays visibly old (its date is in the file).

    python benchmarks/readme_measurements.py --list           # the measurements and what each runs
    python benchmarks/readme_measurements.py --only compare playground threads browser
    python benchmarks/readme_measurements.py                  # all but ci_serial (about 20 minutes)

Timings are only as good as the machine is idle: run it with nothing else on the CPU. `ci` and `ci_serial`
clone the repository's HEAD into a temporary folder and run `.ci/run` there, which re-points the editable install
to the clone; they point it back to this checkout when they end (`pip install --no-deps -e .`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "readme_measurements.json"
PY = sys.executable


def run(cmd: list[str] | str, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run a command (a list, or a shell line), fail loudly if it fails, return (wall seconds, stdout + stderr)."""
    shell = isinstance(cmd, str)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, shell=shell, env={**os.environ, **(env or {})}, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd if shell else shlex.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}")
    return wall, p.stdout


def timed_rss(cmd: list[str], **kw) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB from `/usr/bin/time -v`, output) of a command."""
    wall, out = run(["/usr/bin/time", "-v", *cmd], **kw)
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out).group(1))
    return wall, round(peak_kb / 1024), out


def last_json(text: str) -> dict:
    """The JSON object a benchmark script printed last."""
    return json.loads(text[text.rindex("\n{") + 1 if "\n{" in text else text.index("{"):])


# --------------------------------------------------------------------------------------------- measurements
def compare(tmp: Path) -> dict:
    """`python -m minigpt compare --seeds 1` on the CPU: every registered run, one seed."""
    cmd = [PY, "-m", "minigpt", "compare", "--seeds", "1", "--out", str(tmp / "compare")]
    wall, _ = run(cmd)
    return {"commands": [shlex.join(cmd[1:])], "values": {"wall_s": round(wall)}}


def playground(tmp: Path) -> dict:
    """Notebook 04's default run, figure redrawn live, median of 3."""
    cmd = [PY, "benchmarks/playground.py", "--live", "--repeats", "3"]
    r = last_json(run(cmd)[1])
    return {"commands": [shlex.join(cmd[1:])], "values": {"median_s": round(r["median_s"]), "seconds": r["seconds"]}}


def threads(tmp: Path) -> dict:
    """The playground's default run, figure redrawn live, on one torch thread (the notebooks' CPU_THREADS) and on
    two with OpenMP's default wait policy (spinning) or PASSIVE (sleeping), on an idle machine and with one busy
    process beside it: median of 3 runs each."""
    values, commands = {}, []
    for busy in (False, True):
        for name, flags in (("one", ["--threads", "1"]), ("two_spin", ["--threads", "2"]),
                            ("two_passive", ["--threads", "2", "--omp", "passive"])):
            cmd = [PY, "benchmarks/playground.py", "--live", "--repeats", "3", *flags] + (["--busy"] if busy else [])
            r = last_json(run(cmd)[1])
            values[f"{name}_{'busy' if busy else 'idle'}_s"] = round(r["median_s"])
            commands.append(shlex.join(cmd[1:]))
    return {"commands": commands, "values": values}


def browser(tmp: Path) -> dict:
    """The browser test alone (JupyterLab in headless Chromium)."""
    cmd = [PY, "-m", "pytest", "-q", "-m", "browser", "tests/test_browser.py"]
    wall, out = run(cmd, env={"CI": "1"})
    return {"commands": [shlex.join(cmd[1:])], "values": {"wall_s": round(wall), **pytest_counts(out)}}


def pytest_counts(out: str) -> dict:
    """Counts and seconds from pytest's last summary line ('680 passed, 1 skipped in 355.20s (0:05:55)')."""
    line = [s for s in out.splitlines() if re.search(r"\d+ passed", s)][-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|skipped|failed|errors?)", line)}
    return {**counts, "pytest_s": round(float(re.search(r" in ([\d.]+)s", line).group(1)))}


def _fresh_clone(tmp: Path) -> Path:
    clone = tmp / "clone"
    run(["git", "clone", "-q", str(ROOT), str(clone)])
    return clone


def _restore_editable() -> None:
    run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT)])


def ci(tmp: Path) -> dict:
    """`.ci/run` on a fresh clone of HEAD (the wheels and Chromium already on the machine): installs, then the
    README's test command."""
    clone = _fresh_clone(tmp)
    try:
        wall, out = run(["bash", ".ci/run"], cwd=clone, env={"CI": "true"})
    finally:
        _restore_editable()
    return {"commands": ["git clone <repo> <tmp> && cd <tmp> && CI=true bash .ci/run"],
            "values": {"wall_s": round(wall), **pytest_counts(out)}}


def ci_serial(tmp: Path) -> dict:
    """The README's test command without pytest-xdist (one process), on a fresh clone: why the README runs two."""
    clone = _fresh_clone(tmp)
    readme_cmd = re.search(r"^python -m pytest .*$", (ROOT / "README.md").read_text(), re.M).group(0)
    serial = readme_cmd.replace(" -n 2 --dist loadfile", "")
    try:
        run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(clone)])
        wall, out = run(serial, cwd=clone, env={"CI": "true"})
    finally:
        _restore_editable()
    return {"commands": [serial], "values": {"wall_s": round(wall), **pytest_counts(out)}}


def _jsonl_corpus(path: Path, megabytes: float, seed: int = 0) -> None:
    """A JSONL corpus of about `megabytes` MB: Shakespeare's paragraphs, shuffled into ~2 KB documents."""
    paragraphs = [p for p in (ROOT / "data" / "shakespeare.txt").read_text().split("\n\n") if p.strip()]
    rng, written = random.Random(seed), 0
    with path.open("w") as f:
        while written < megabytes * 1e6:
            doc = "\n\n".join(rng.choice(paragraphs) for _ in range(8))
            line = json.dumps({"text": doc}) + "\n"
            f.write(line)
            written += len(line.encode())


def prepare_memory(tmp: Path) -> dict:
    """`prepare` on a generated 300 MB JSONL corpus (wall, peak RSS); a 20-step `train --data` on it and, twice,
    on a small corpus (peak RSS, the same model and vocabulary); benchmarks/prepared_memory.py on the big one."""
    big, small = tmp / "big.jsonl", tmp / "small.jsonl"
    _jsonl_corpus(big, 300)
    _jsonl_corpus(small, 0.6, seed=1)
    prep = [PY, "-m", "minigpt", "prepare", str(big), "--out", str(tmp / "web"), "--num_proc", "2",
            "--progress", "false"]
    prep_s, prep_rss, _ = timed_rss(prep)
    run([PY, "-m", "minigpt", "prepare", str(small), "--out", str(tmp / "small"), "--progress", "false"])
    meta = json.loads((tmp / "web" / "meta.json").read_text())
    small_meta = json.loads((tmp / "small" / "meta.json").read_text())

    def train(data: str, out: str) -> int:
        cmd = [PY, "-m", "minigpt", "train", "--data", str(tmp / data), "--preset", "cpu-tiny", "--steps", "20",
               "--out", str(tmp / out)]
        return timed_rss(cmd)[1]

    train_big = train("web", "t0")
    train_small = [train("small", "t1"), train("small", "t2")]
    mem = last_json(run([PY, "benchmarks/prepared_memory.py", str(tmp / "web")])[1])
    anon = [mem["rss_mb_before"]["RssAnon"], mem["rss_mb_after_open"]["RssAnon"],
            mem["rss_mb_after_1000_batches"]["RssAnon"]]
    return {
        "commands": [shlex.join(["/usr/bin/time", "-v", *prep[1:3], "<300 MB JSONL>", *prep[4:]]),
                     "/usr/bin/time -v python -m minigpt train --data DIR --preset cpu-tiny --steps 20 --out ...",
                     "python benchmarks/prepared_memory.py DIR"],
        "values": {
            "corpus_mb": round(big.stat().st_size / 1e6), "tokens_m": round(meta["tokens"]["total"] / 1e6),
            "train_bin_mb": round((tmp / "web" / "train.bin").stat().st_size / 1e6),
            "prepare_s": round(prep_s), "prepare_peak_rss_mb": prep_rss,
            "small_tokens_m": round(small_meta["tokens"]["total"] / 1e6, 2),
            "train_peak_rss_mb": train_big, "train_small_peak_rss_mb": train_small,
            "open_anon_mb": round(anon[1] - anon[0]), "batches_anon_mb": round(anon[2] - anon[1]),
            "n_batches": 1000, "batches": mem["batch"], "train_steps": 20, "num_proc": 2,
        },
    }


MEASUREMENTS: dict[str, Callable[[Path], dict]] = {
    "compare": compare, "playground": playground, "threads": threads, "browser": browser,
    "prepare_memory": prepare_memory, "ci": ci, "ci_serial": ci_serial,
}
DEFAULT = [name for name in MEASUREMENTS if name != "ci_serial"]  # ci_serial alone takes over 10 minutes


def machine() -> dict:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(MEASUREMENTS), help="these measurements (default: all "
                    "but ci_serial)")
    ap.add_argument("--list", action="store_true", help="print the measurements and exit")
    args = ap.parse_args()
    if args.list:
        for name, fn in MEASUREMENTS.items():
            print(f"{name:<15} {' '.join(fn.__doc__.split())}")
        return
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results = {k: v for k, v in results.items() if k in MEASUREMENTS}  # a measurement that no longer exists
    commit = run(["git", "rev-parse", "HEAD"])[1].strip()
    if run(["git", "status", "--porcelain", "--untracked-files=no"])[1].strip():
        commit += "-dirty"  # measured with uncommitted changes to tracked files
    for name in args.only or DEFAULT:
        print(f"{name} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"minigpt-{name}-") as tmp:
            r = MEASUREMENTS[name](Path(tmp))
        results[name] = {
            "what": " ".join(MEASUREMENTS[name].__doc__.split()), **r, "commit": commit, "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        print(json.dumps(results[name]["values"]), flush=True)
        OUT.write_text(json.dumps(dict(sorted(results.items())), indent=1) + "\n")  # after each: a crash keeps the rest


if __name__ == "__main__":
    main()

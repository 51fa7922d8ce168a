"""The playground's live figure: loss curves, gradient norms per layer and residual-stream norms, drawn on the
Agg canvas and shown as a PNG. Part of minigpt/playground (overview in its __init__.py)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, MaxNLocator, NullLocator

from .controls import DEFAULT_STEPS
from .runner import PlaygroundRun


class LiveFigure:
    """The drawing half of `Playground` (a mixin: the state it uses is set up by `Playground.__init__`)."""

    def _runs_to_draw(self) -> list[PlaygroundRun]:
        return self.runs + ([self.current] if self.current is not None and self.current not in self.runs else [])

    def _draw(self, full: bool = True) -> None:
        """Redraw the figure and push it to the widget: everything (`full`), or the current run's artists."""
        with self._draw_lock:
            if full or not self._live_artists:
                self._draw_all()
            else:
                self._update_current()
            self.image.value = self._png()

    def _png(self) -> bytes:
        buf = io.BytesIO()
        self.figure.canvas.print_png(buf)
        return buf.getvalue()

    def save_figure(self, path: str | Path, dpi: int = 110) -> Path:
        """Save the figure as the widget shows it (e.g. for a README or to look at it headless)."""
        with self._draw_lock:
            self._draw_all()
            self.figure.savefig(path, dpi=dpi)
        return Path(path)

    def _draw_all(self) -> None:
        fig = self.figure
        fig.clear()
        runs = self._runs_to_draw()
        handles = self._legend_handles(runs)
        # The legend goes below the plots, in columns, and the figure grows by its height: it never covers a
        # curve however many runs are kept. Margins in inches, so the plots keep their size.
        width, plots_h = 12.0, 4.8
        ncol = max(1, min(3, int(11.4 // (0.5 + 0.072 * max((len(h.get_label()) for h in handles), default=1)))))
        rows = math.ceil(len(handles) / ncol)
        legend_h = 0.15 + 0.2 * rows if handles else 0.0
        height = plots_h + legend_h
        fig.set_size_inches(width, height)
        gs = fig.add_gridspec(2, 2, width_ratios=[1.45, 1], left=0.06, right=0.985,
                              bottom=(legend_h + 0.5) / height, top=1 - 0.34 / height, wspace=0.17, hspace=0.5)
        ax_loss = fig.add_subplot(gs[:, 0])
        ax_grad = fig.add_subplot(gs[0, 1])
        ax_res = fig.add_subplot(gs[1, 1])
        self._axes = (ax_loss, ax_grad, ax_res)
        self._live_artists = {}

        ax_loss.set_title("loss vs step (line: train, dots: validation)")
        ax_loss.set_xlabel("optimizer step")
        ax_loss.set_ylabel("cross-entropy (nats/token)")
        ax_loss.grid(alpha=0.3)
        xmax = max([r.steps for r in runs], default=DEFAULT_STEPS)
        ax_loss.set_xlim(0, xmax)
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))  # no step 0.5 on a 3-step run
        self._loss_ylim(runs)
        if self._data is not None:  # once data is loaded: the loss of a model that learned only token frequencies
            ax_loss.axhline(self.unigram_entropy(), color="gray", ls=":", lw=1.2)
        diverged_at: list[int] = []
        for run in runs:
            current = run is self.current
            (train_line,) = ax_loss.plot([], [], color=run.color, lw=1.6 if current else 1.2, alpha=0.9)
            (val_line,) = ax_loss.plot([], [], color=run.color, ls="none", marker="o", ms=6, mec="white", mew=0.8)
            # The divergence mark and its short label sit in front of the curves; marks of runs that diverged at
            # (nearly) the same step are stacked downwards instead of drawn on top of each other.
            (div_mark,) = ax_loss.plot([], [], color=run.color, marker="X", ms=14, mec="black", ls="none", zorder=6)
            div_text = ax_loss.annotate("", (0, 0), xytext=(-8, -18), textcoords="offset points", ha="right",
                                        color=run.color, fontsize=10, fontweight="bold", zorder=6)
            slot = 0
            if run.diverged_step is not None:
                slot = sum(abs(s - run.diverged_step) <= 0.03 * xmax for s in diverged_at)
                diverged_at.append(run.diverged_step)
            artists = dict(train=train_line, val=val_line, div=div_mark, div_text=div_text, run=run, slot=slot)
            self._set_loss_artists(artists)
            if current:
                self._live_artists.update(artists)
        if handles:
            fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.055, legend_h / height), ncol=ncol,
                       fontsize=9, frameon=False, borderaxespad=0.0, columnspacing=1.5)
        if not runs:
            ax_loss.text(0.5, 0.5, "no runs yet: press Train", transform=ax_loss.transAxes, ha="center",
                         va="center", color="gray", fontsize=12)

        grad_steps = {r.grad_norms_step for r in runs if r.grad_norms}
        res_steps = {r.residual_norms_step for r in runs if r.residual_norms}
        ax_grad.set_title(f"gradient norm per block ({_at(grad_steps, 'last finite step')})")
        ax_grad.set_ylabel("‖∂L/∂W‖_F  (4 matrices)")
        ax_res.set_title(f"residual-stream norm per layer ({_at(res_steps, 'last measured')})")
        ax_res.set_ylabel("mean ‖x_l‖₂")
        for ax in (ax_grad, ax_res):  # log: the norms of different placements differ by orders of magnitude
            ax.set_yscale("log")
            ax.grid(alpha=0.3, axis="y")
        n = max(len(runs), 1)
        width = 0.8 / n
        max_layers = max([r.n_layer for r in runs], default=self.base_n_layer)
        bars = []
        for i, run in enumerate(runs):
            offset = (i - (n - 1) / 2) * width
            grad_bars = ax_grad.bar([layer + 1 + offset for layer in range(run.n_layer)], [1.0] * run.n_layer,
                                    width=width, color=run.color, edgecolor="black", lw=0.4)
            res_bars = ax_res.bar([layer + offset for layer in range(run.n_layer + 1)], [1.0] * (run.n_layer + 1),
                                  width=width, color=run.color, edgecolor="black", lw=0.4)
            self._set_bars(grad_bars, run.block_grad_norms)
            self._set_bars(res_bars, run.residual_norms)
            bars.append((ax_res, res_bars, run.residual_norms, run.color))
            if run is self.current:
                self._live_artists.update(grad=grad_bars, res=res_bars)
        ax_grad.set_xticks(range(1, max_layers + 1))
        ax_grad.set_xlabel("block")
        ax_res.set_xticks(range(max_layers + 1), ["emb", *[str(i) for i in range(1, max_layers + 1)]])
        ax_res.set_xlabel("after block (emb = input of block 1)")
        self._bar_ylim(ax_grad, [r.block_grad_norms for r in runs])
        self._bar_ylim(ax_res, [r.residual_norms for r in runs])
        for ax, group, values, color in bars:
            _mark_not_finite(ax, group, values, color)

    def _legend_handles(self, runs: list[PlaygroundRun]) -> list[Line2D]:
        handles = []
        if self._data is not None:
            handles.append(Line2D([], [], color="gray", ls=":", label="unigram entropy (token frequencies only)"))
        for run in runs:
            if run is self.current:
                state = " (running)"
            elif run.diverged:
                state = f" — DIVERGED at {run.diverged_step}"
                if run.grad_norms and run.grad_norms_step != run.diverged_step:
                    state += f" (gradient bars: step {run.grad_norms_step})"
            else:
                state = ""
            handles.append(Line2D([], [], color=run.color, lw=2, label=run.label + state))
        return handles

    def _update_current(self) -> None:
        a = self._live_artists
        runs = self._runs_to_draw()
        ax_loss, ax_grad, ax_res = self._axes
        self._loss_ylim(runs)
        self._set_loss_artists(a)
        self._set_bars(a["grad"], a["run"].block_grad_norms)
        self._set_bars(a["res"], a["run"].residual_norms)
        self._bar_ylim(ax_grad, [r.block_grad_norms for r in runs])
        self._bar_ylim(ax_res, [r.residual_norms for r in runs])

    def _set_loss_artists(self, a: dict[str, Any]) -> None:
        run: PlaygroundRun = a["run"]
        a["train"].set_data(range(1, len(run.losses) + 1), run.losses)
        a["train"].set_marker("o" if len(run.losses) == 1 else "None")  # one step is a point, not a line
        a["val"].set_data([s for s, _ in run.val], [v for _, v in run.val])
        if run.diverged_step is not None:
            ax = a["train"].axes
            bottom, top = ax.get_ylim()
            top -= 0.04 * (top - bottom)  # an exploded loss is off the scale: pin the mark inside the top edge
            shown = run.diverged_loss if run.diverged_loss is not None and math.isfinite(run.diverged_loss) else top
            y = min(shown, top) - a["slot"] * 0.09 * (top - bottom)
            a["div"].set_data([run.diverged_step], [y])
            left = run.diverged_step < 0.5 * ax.get_xlim()[1]  # keep the text inside the axes
            a["div_text"].set_text(f"diverged at step {run.diverged_step}")  # the loss is in the status line
            a["div_text"].xy = (run.diverged_step, y)
            a["div_text"].set_ha("left" if left else "right")
            a["div_text"].set_position((10 if left else -10, -16))

    @staticmethod
    def _loss_top(runs: list[PlaygroundRun]) -> float:
        starts = [r.losses[0] for r in runs if r.losses and math.isfinite(r.losses[0])]
        return (max(starts) if starts else 4.5) + 0.3

    def _loss_ylim(self, runs: list[PlaygroundRun]) -> None:
        ax = self._axes[0]
        finite = [x for r in runs for x in r.losses if math.isfinite(x)]
        finite += [v for r in runs for _, v in r.val if math.isfinite(v)]
        top = self._loss_top(runs)
        bottom = min(finite) - 0.15 if finite else 0.0
        ax.set_ylim(max(bottom, 0.0), top)

    @staticmethod
    def _set_bars(bars: Any, values: list[float]) -> None:
        for i, bar in enumerate(bars):
            v = values[i] if i < len(values) else float("nan")
            ok = math.isfinite(v) and v > 0
            bar.set_height(v if ok else 1.0)
            bar.set_visible(ok)

    @staticmethod
    def _bar_ylim(ax: Any, series: list[list[float]]) -> None:
        """Log axis around the values; ticks at 1-2-5 within two decades, else at powers of ten only (minor log
        ticks are off: they cost more to draw than everything else)."""
        vals = [v for s in series for v in s if math.isfinite(v) and v > 0]
        lo, hi = (min(vals) / 2, max(vals) * 2) if vals else (0.1, 10.0)
        ax.set_ylim(lo, hi)
        if math.log10(hi / lo) <= 2.5:
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        ax.yaxis.set_minor_locator(NullLocator())


def _at(steps: set[int], mixed: str) -> str:
    """"step 150" when every run's bars are from the same step, else what they are (e.g. "last finite step")."""
    return f"step {next(iter(steps))}" if len(steps) == 1 else mixed


def _mark_not_finite(ax: Any, bars: Any, values: list[float], color: str) -> None:
    """An inf or NaN norm (a stream that blew up) is a hatched bar to the top of the axes, labelled, not a gap."""
    bottom, top = ax.get_ylim()
    for bar, v in zip(bars, values, strict=False):
        if math.isfinite(v):
            continue
        bar.set_visible(True)
        bar.set_height(top)
        bar.set_facecolor("none")
        bar.set_edgecolor(color)
        bar.set_hatch("xx")
        ax.text(bar.get_x() + bar.get_width() / 2, math.sqrt(bottom * top), "NaN" if math.isnan(v) else "inf",
                rotation=90, ha="center", va="center", fontsize=9, fontweight="bold", color="black",
                bbox=dict(fc="white", ec="none", pad=0.5, alpha=0.8))

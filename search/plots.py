"""Figures of the search and its report (matplotlib, Agg backend; every PNG written atomically).

    plot_search              selection probabilities of a few layers over the search steps,
                             with the losses, the expected energy and the temperature
    plot_cost_split          energy and storage per layer group, fp32 vs plan, % of the fp32 total
    plot_weight_histograms   weight values of a few layers before and after quantization
    plot_pareto              accuracy vs energy of a lambda sweep, the Pareto front connected
    plot_pareto_fpga         accuracy vs estimated LUT and vs DSP of a lambda sweep, each front connected
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hqflow.config import load_config  # noqa: E402
from hqflow.cost import GROUPS  # noqa: E402
from hqflow.errors import UserError  # noqa: E402
from hqflow.io import atomic_write  # noqa: E402

# The layers a figure shows by default, one per part of the model (first match of each pattern).
SHOWCASE = ("sps.conv0", "sps.rpe", ".attn.q", ".attn.v", ".mlp.fc1", "head")
DPI = 110


def pick_layers(names: list[str], n: int = 6) -> list[str]:
    """Up to `n` layers spread over the model: the SHOWCASE ones present, then evenly spaced others."""
    chosen = []
    for pattern in SHOWCASE:
        match = next((m for m in names if m == pattern or m.endswith(pattern)), None)
        if match is not None and match not in chosen:
            chosen.append(match)
    rest = [m for m in names if m not in chosen]
    spare = max(0, n - len(chosen))
    chosen += [rest[i] for i in np.linspace(0, len(rest) - 1, spare).round().astype(int)] if rest and spare else []
    return [m for m in names if m in chosen][:n]


def _save(fig, png_path: Path) -> None:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    atomic_write(Path(png_path), lambda p: fig.savefig(p, format="png", dpi=DPI))
    plt.close(fig)


def read_search_log(log_path: Path) -> list[dict]:
    """The search log's records (one per step), checked for the keys the figures use."""
    log_path = Path(log_path)
    if not log_path.is_file():
        raise UserError(f"{log_path}: search log not found")
    records = []
    for i, line in enumerate(log_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{log_path}:{i}: not valid JSON ({err})") from None
        missing = [k for k in ("step", "tau", "weight_ce", "alpha_ce", "energy_pct", "probabilities")
                   if k not in record]
        if missing:
            raise UserError(f"{log_path}:{i}: lacks key(s) {', '.join(missing)}")
        records.append(record)
    if not records:
        raise UserError(f"{log_path}: the search log is empty")
    return records


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at every step (fewer at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_search(log_path: Path, png_path: Path, layers: list[str] | None = None) -> None:
    """Selection probability of every format over the search steps, for `layers` (default: 6 spread).

    The candidate order of the log's probability lists is `search.candidates` of the
    `config.yaml` next to the log. The last two panels show the step losses (cross-entropy of the
    weight and the alpha step, running means) with the expected energy (% of the fp32 model) on a
    second axis, and the Gumbel temperature tau.
    """
    log_path = Path(log_path)
    records = read_search_log(log_path)
    candidates = load_config(log_path.parent / "config.yaml").search.candidates
    names = list(records[0]["probabilities"])
    layers = pick_layers(names) if layers is None else list(layers)
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise UserError(f"{log_path}: no layer(s) {', '.join(unknown)} in the log (its layers: {', '.join(names)})")
    steps = np.array([r["step"] for r in records])
    cols = 4
    rows = -(-(len(layers) + 2) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows + 0.7), squeeze=False, layout="constrained")
    axes = axes.ravel()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes, layers):
        probs = np.array([r["probabilities"][name] for r in records])  # [steps, K]
        if probs.shape[1] != len(candidates):
            raise UserError(f"{log_path}: layer {name} has {probs.shape[1]} probabilities, "
                            f"config.yaml's search.candidates has {len(candidates)}")
        for k, cand in enumerate(candidates):
            ax.plot(steps, probs[:, k], color=colors[k % len(colors)], label=cand, lw=1.4)
        final = candidates[int(probs[-1].argmax())]
        ax.set(title=f"{name} -> {final}", ylim=(-0.02, 1.02), xlabel="search step", ylabel="probability")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    window = max(1, len(records) // 50)
    ax_loss = axes[len(layers)]
    for key, label in (("weight_ce", "CE, weight step"), ("alpha_ce", "CE, alpha step")):
        ax_loss.plot(steps, _running_mean(np.array([r[key] for r in records], float), window), label=label)
    ax_loss.set(xlabel="search step", ylabel="cross-entropy",
                title="loss" + (f" (mean of {window} steps)" if window > 1 else ""))
    ax_loss.title.set_fontsize(9)
    ax_loss.grid(alpha=0.3)
    ax_energy = ax_loss.twinx()
    ax_energy.plot(steps, [r["energy_pct"] for r in records], color="black", ls="--", label="expected energy")
    ax_energy.set_ylabel("expected energy (% of fp32)")
    lines = ax_loss.get_lines() + ax_energy.get_lines()
    ax_loss.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper right")
    ax_tau = axes[len(layers) + 1]
    ax_tau.plot(steps, [r["tau"] for r in records], color="tab:purple")
    ax_tau.set(xlabel="search step", ylabel="tau", title="Gumbel temperature", yscale="log")
    ax_tau.title.set_fontsize(9)
    ax_tau.grid(alpha=0.3, which="both")
    for ax in axes[len(layers) + 2:]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(candidates), fontsize=9, frameon=False)
    fig.suptitle(f"selection probabilities over the search ({log_path.parent.name})", fontsize=11)
    _save(fig, png_path)


def plot_cost_split(fp32_summary: dict, plan_summary: dict, png_path: Path, title: str = "") -> None:
    """Energy and storage per layer group and in total, fp32 vs plan, in % of the fp32 model total.

    Summaries are `cost.summarize` dicts (keys energy_pct_by_group, storage_pct_by_group,
    energy_pct, storage_pct). Log scale: a quantized plan is often 10-100x below fp32.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(GROUPS) + 1)
    for ax, what in zip(axes, ("energy", "storage")):
        rows = [[s[f"{what}_pct_by_group"][g] for g in GROUPS] + [s[f"{what}_pct"]]
                for s in (fp32_summary, plan_summary)]
        for i, (label, values) in enumerate(zip(("fp32", "plan"), rows)):
            bars = ax.bar(x + (i - 0.5) * 0.38, values, 0.38, label=label, color=("tab:gray", "tab:blue")[i])
            ax.bar_label(bars, [f"{v:.3g}" for v in values], fontsize=7, padding=1)
        ax.set_xticks(x, list(GROUPS) + ["total"])
        ax.set(yscale="log", ylabel=f"{what} (% of the fp32 model total)", title=what)
        ax.set_ylim(top=ax.get_ylim()[1] * 2)
        ax.grid(alpha=0.3, axis="y", which="both")
        ax.legend()
    if title:
        fig.suptitle(title)
    _save(fig, png_path)


def plot_weight_histograms(pairs: dict[str, tuple[np.ndarray, np.ndarray]], png_path: Path,
                           formats: dict[str, str] | None = None) -> None:
    """Weights of each layer before (top, histogram) and after quantization (bottom).

    A quantized weight with at most 64 distinct values is drawn as one bar per level (its
    height: how many weights hold it), so its discrete level set shows; `formats` titles the panels.
    """
    if not pairs:
        raise ValueError("plot_weight_histograms: no layers given")
    formats = formats or {}
    fig, axes = plt.subplots(2, len(pairs), figsize=(3.0 * len(pairs), 5), squeeze=False)
    for j, (name, (w, wq)) in enumerate(pairs.items()):
        w, wq = np.asarray(w, np.float64).ravel(), np.asarray(wq, np.float64).ravel()
        top, bottom = axes[0, j], axes[1, j]
        top.hist(w, bins=60, color="tab:gray")
        top.set_title(f"{name}\nbefore: fp32, {w.size} weights", fontsize=9)
        levels, counts = np.unique(wq, return_counts=True)
        if len(levels) <= 64:
            width = 0.8 * (np.diff(levels).min() if len(levels) > 1 else max(abs(levels[0]), 1e-3))
            bottom.bar(levels, counts, width=width, color="tab:blue")
            bottom.set_title(f"after: {formats.get(name, 'quantized')}, {len(levels)} levels", fontsize=9)
        else:
            bottom.hist(wq, bins=60, color="tab:blue")
            bottom.set_title(f"after: {formats.get(name, 'quantized')}", fontsize=9)
        (a, b), (c, d) = top.get_xlim(), bottom.get_xlim()
        for ax in (top, bottom):
            ax.set_xlim(min(a, c), max(b, d))
        bottom.set_xlabel("weight value")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("count")
    axes[1, 0].set_ylabel("count")
    _save(fig, png_path)


def pareto_front(points: list[dict], key: str = "energy_pct") -> list[dict]:
    """The points no other point beats: none has lower-or-equal `key` (a cost: energy_pct, lut,
    dsp...) and higher accuracy (or equal accuracy at lower cost). Sorted by `key`."""
    front = []
    for p in sorted(points, key=lambda p: (p[key], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def plot_pareto(points: list[dict], png_path: Path, fp32: dict | None = None) -> None:
    """Accuracy (%) vs energy (% of fp32, log) of a sweep; points are dicts with keys lambda,
    accuracy (fraction), energy_pct, avg_weight_bits. The Pareto front is connected; `fp32`
    (keys accuracy, energy_pct) is drawn as the reference."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter([p["energy_pct"] for p in points], [100 * p["accuracy"] for p in points],
               color="tab:blue", zorder=3, label="searched plans")
    for i, p in enumerate(sorted(points, key=lambda q: q["energy_pct"])):  # alternate sides: near points stay legible
        ax.annotate(f"λ={p['lambda']:g}\n{p['avg_weight_bits']:.2f} bits", (p["energy_pct"], 100 * p["accuracy"]),
                    textcoords="offset points", xytext=(6, 4) if i % 2 else (-6, -4), fontsize=7,
                    ha="left" if i % 2 else "right", va="bottom" if i % 2 else "top")
    front = pareto_front(points)
    ax.plot([p["energy_pct"] for p in front], [100 * p["accuracy"] for p in front], color="tab:blue",
            lw=1.2, label="Pareto front")
    if fp32 is not None:
        ax.scatter([fp32["energy_pct"]], [100 * fp32["accuracy"]], marker="*", s=140, color="tab:red",
                   zorder=3, label="fp32")
        ax.axhline(100 * fp32["accuracy"], color="tab:red", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="energy (% of the fp32 model, every MAC)", ylabel="test accuracy (%)",
           title="accuracy vs energy over hw_lambda")
    ax.margins(x=0.12, y=0.15)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    _save(fig, png_path)


def plot_pareto_fpga(points: list[dict], png_path: Path, fp32: dict | None = None) -> None:
    """Accuracy (%) vs the estimated FPGA resources of each plan of a sweep, two panels: LUT and
    DSP (counts, `hqflow.fpga` estimate of the weighted layers' cores). points: dicts with keys
    lambda, accuracy (fraction), lut, dsp, bram; each panel connects its Pareto front; `fp32`
    (accuracy, lut, dsp) is drawn as the reference when it has them."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "lut", "LUT"), (axes[1], "dsp", "DSP")):
        ax.scatter([p[key] for p in points], [100 * p["accuracy"] for p in points], color="tab:blue", zorder=3,
                   label="searched plans")
        for i, p in enumerate(sorted(points, key=lambda q: q[key])):
            ax.annotate(f"λ={p['lambda']:g}\n{p['bram']:.1f} BRAM36", (p[key], 100 * p["accuracy"]),
                        textcoords="offset points", xytext=(6, 4) if i % 2 else (-6, -4), fontsize=7,
                        ha="left" if i % 2 else "right", va="bottom" if i % 2 else "top")
        front = pareto_front(points, key)
        ax.plot([p[key] for p in front], [100 * p["accuracy"] for p in front], color="tab:blue", lw=1.2,
                label="Pareto front")
        if fp32 is not None and key in fp32:
            ax.scatter([fp32[key]], [100 * fp32["accuracy"]], marker="*", s=140, color="tab:red", zorder=3,
                       label="fp32")
            ax.axhline(100 * fp32["accuracy"], color="tab:red", lw=0.8, ls=":")
        ax.set(xlabel=f"{label} (count, estimated, weighted layers' cores)", ylabel="test accuracy (%)",
               title=f"accuracy vs {label} over hw_lambda")
        ax.margins(x=0.15, y=0.15)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    _save(fig, png_path)

"""Figures of the search and its report (matplotlib, Agg backend; every PNG written atomically).

    plot_search              selection probabilities of a few layers over the search steps,
                             with the losses, the expected energy and the temperature
    plot_cost_split          energy and storage per layer group, fp32 vs plan, % of the fp32 total
    plot_weight_histograms   weight values of a few layers before and after quantization
    plot_pareto              accuracy vs energy of a lambda sweep, the Pareto front connected
    plot_pareto_fpga         accuracy vs estimated LUT and vs DSP of a lambda sweep, each front connected
    plot_layer_search        Fig. 3: one layer's format probabilities and the total loss CE + lambda E
    plot_format_map          Fig. 5: chosen format per layer, layers x plans (lambdas)
    plot_format_pies         Fig. 5: share of formats among q / k / v / proj
    plot_firing_rates        Fig. 5: firing rates of the LIF after q / k / v / proj
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
                           formats: dict[str, str] | None = None, title: str = "") -> None:
    """Weights of each layer before (top, histogram) and after quantization (bottom).

    A quantized weight with at most 64 distinct values is drawn as one bar per level (its
    height: how many weights hold it), so its discrete level set shows; `formats` titles the
    panels, `title` (optional) the figure.
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
    if title:
        fig.suptitle(title, fontsize=10)
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


# ---- the paper's figures (Fig. 3, Fig. 5): `hqflow figures`, search/figures.py -----------------------

ATTENTION_LABELS = {"q": "q", "k": "k", "v": "v", "proj": "o (proj)"}


def total_loss(records: list[dict], hw_lambda: float) -> np.ndarray:
    """The alpha step's loss per search step: CE + hw_lambda * E / E_fp32 (the search's objective;
    E is the log's fpga_pct when the search's cost was "fpga", else energy_pct). Shape [steps]."""
    return np.array([r["alpha_ce"] + hw_lambda * r.get("fpga_pct", r["energy_pct"]) / 100 for r in records], float)


def plot_layer_search(log_path: Path, png_path: Path, layer: str, hw_lambda: float, note: str = "") -> None:
    """Fig. 3: the selection probability of each format of `layer` over the search steps (left) and
    the search's total loss CE + lambda E with its two terms (right; running means).

    The log's probability lists follow `search.candidates` of the `config.yaml` beside the log;
    `note` is added to the title (e.g. why this layer was chosen)."""
    log_path = Path(log_path)
    records = read_search_log(log_path)
    candidates = load_config(log_path.parent / "config.yaml").search.candidates
    names = list(records[0]["probabilities"])
    if layer not in names:
        raise UserError(f"{log_path}: no layer {layer} in the log (its layers: {', '.join(names)})")
    probs = np.array([r["probabilities"][layer] for r in records], float)  # [steps, K]
    if probs.shape[1] != len(candidates):
        raise UserError(f"{log_path}: layer {layer} has {probs.shape[1]} probabilities, "
                        f"config.yaml's search.candidates has {len(candidates)}")
    steps = np.array([r["step"] for r in records])
    fig, (ax_p, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for k, cand in enumerate(candidates):
        ax_p.plot(steps, probs[:, k], lw=1.5, label=cand)
    final = candidates[int(probs[-1].argmax())]
    ax_p.set(xlabel="search step", ylabel="selection probability softmax(alpha)", ylim=(-0.02, 1.02),
             title=f"{layer}: format probabilities (ends at {final})")
    ax_p.grid(alpha=0.3)
    ax_p.legend(fontsize=8, loc="best")
    window = max(1, len(records) // 50)
    hw = total_loss(records, hw_lambda) - np.array([r["alpha_ce"] for r in records], float)
    what = "FPGA cost" if "fpga_pct" in records[0] else "energy"
    ax_l.plot(steps, _running_mean(total_loss(records, hw_lambda), window), color="black", lw=1.6,
              label=f"total: CE + λ·E  (λ = {hw_lambda:g})")
    ax_l.plot(steps, _running_mean(np.array([r["alpha_ce"] for r in records], float), window), color="tab:blue",
              lw=1.1, label="CE (alpha step, held-out batch)")
    ax_l.plot(steps, hw, color="tab:red", lw=1.1, ls="--", label=f"λ·E  (E: expected {what} / fp32's)")
    ax_l.set(xlabel="search step", ylabel="loss",
             title="search loss" + (f" (CE: mean of {window} steps)" if window > 1 else ""))
    ax_l.grid(alpha=0.3)
    ax_l.legend(fontsize=8, loc="best")
    fig.suptitle(f"Fig. 3: {log_path.parent.name}" + (f" — {note}" if note else ""), fontsize=11)
    _save(fig, png_path)


def _format_colors(candidates: list[str]) -> dict[str, tuple]:
    """One fixed colour per format name (fp32 grey; po2 family blues, uniform family oranges)."""
    palette = {"fp32": "#9e9e9e"}
    po2 = sorted(c for c in candidates if c.startswith("po2"))
    uni = sorted(c for c in candidates if c.startswith("uniform"))
    for family, cmap in ((po2, plt.get_cmap("Blues")), (uni, plt.get_cmap("Oranges"))):
        for i, c in enumerate(family):
            palette[c] = cmap(0.45 + 0.45 * i / max(1, len(family) - 1))
    others = [c for c in candidates if c not in palette]
    for i, c in enumerate(others):
        palette[c] = plt.get_cmap("Greens")(0.4 + 0.5 * i / max(1, len(others) - 1))
    return palette


def plot_format_map(formats: dict[str, dict[str, str]], candidates: list[str], png_path: Path,
                    title: str = "") -> None:
    """Fig. 5 (left): each layer's chosen format, layers (rows, model order) x plans (columns).

    formats: column label (e.g. "λ=0.5") -> {layer name: format name}; every column has the
    same layers. Each cell is coloured by format and labelled with its name."""
    if not formats:
        raise ValueError("plot_format_map: no plan given")
    columns = list(formats)
    layers = list(formats[columns[0]])
    names = list(dict.fromkeys(list(candidates) + [f for col in formats.values() for f in col.values()]))
    colors = _format_colors(names)
    index = {n: i for i, n in enumerate(names)}
    grid = np.array([[index[formats[c][layer]] for c in columns] for layer in layers])  # [layers, plans]
    cmap = matplotlib.colors.ListedColormap([colors[n] for n in names])
    fig, ax = plt.subplots(figsize=(3.2 + 1.1 * len(columns), 1.4 + 0.36 * len(layers)), layout="constrained")
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
    for i, layer in enumerate(layers):
        for j, c in enumerate(columns):
            r, g, b = matplotlib.colors.to_rgb(colors[formats[c][layer]])
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # legible on dark cells
            ax.text(j, i, formats[c][layer], ha="center", va="center", fontsize=7, color=ink)
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_yticks(range(len(layers)), layers, fontsize=8)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False)
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(layers) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title or "chosen format per layer", fontsize=9, wrap=True)
    _save(fig, png_path)


def plot_format_pies(counts: dict[str, dict[str, int]], candidates: list[str], png_path: Path,
                     title: str = "") -> None:
    """Fig. 5: the share of formats among the q / k / v / proj layers, one pie per part.

    counts: part ("q", "k", "v", "proj") -> {format name: how many layers of that part chose it};
    the count n a pie is made of is under it."""
    parts = [p for p in ATTENTION_LABELS if p in counts]
    names = list(dict.fromkeys(list(candidates) + [f for c in counts.values() for f in c]))
    colors = _format_colors(names)
    fig, axes = plt.subplots(1, len(parts), figsize=(2.9 * len(parts), 3.6), squeeze=False, layout="constrained")
    for ax, part in zip(axes[0], parts):
        items = [(f, counts[part].get(f, 0)) for f in names if counts[part].get(f, 0)]
        n = sum(c for _, c in items)
        _, texts = ax.pie([c for _, c in items], colors=[colors[f] for f, _ in items], startangle=90,
                          counterclock=False, labels=[f"{f}\n{c}/{n}" for f, c in items], labeldistance=0.55,
                          textprops={"fontsize": 8, "ha": "center", "va": "center"}, wedgeprops={"edgecolor": "white"})
        for text, (f, _) in zip(texts, items):  # legible on dark wedges
            r, g, b = matplotlib.colors.to_rgb(colors[f])
            text.set_color("black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
        ax.set_title(f"{ATTENTION_LABELS[part]}  (n = {n})", fontsize=10)
    handles = [matplotlib.patches.Patch(color=colors[f], label=f) for f in names]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.suptitle(title or "formats of the attention projections", fontsize=10)
    _save(fig, png_path)


def plot_firing_rates(rates: dict[str, dict[str, float]], png_path: Path, title: str = "") -> None:
    """Fig. 5: the firing rate (spikes / neuron / time step, in [0, 1]) of the LIF after q, k, v
    and proj, grouped by part, one bar per series.

    rates: series label (a plan, e.g. "λ=0.5", or a block) -> {part ("q", "k", "v", "proj"): rate}."""
    series = list(rates)
    parts = [p for p in ATTENTION_LABELS if all(p in r for r in rates.values())]
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(2.5 + 1.4 * len(parts) * max(1, len(series)) ** 0.5, 4), layout="constrained")
    x = np.arange(len(parts))
    for i, s in enumerate(series):
        values = [rates[s][p] for p in parts]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=s)
        ax.bar_label(bars, [f"{v:.3f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, [ATTENTION_LABELS[p] for p in parts])
    ax.set(ylabel="firing rate (spikes / neuron / step)", title=title or "firing rates of the attention projections")
    ax.set_ylim(0, max(max(r.values()) for r in rates.values()) * 1.25 + 1e-3)
    ax.grid(alpha=0.3, axis="y")
    if len(series) > 1:
        ax.legend(fontsize=8, loc="best")
    _save(fig, png_path)

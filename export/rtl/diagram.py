"""The block diagram of an RTL top (architecture.png in the export's rtl/ folder, shown by its README).

Cores are drawn in the sequencer's order, row by row; each node's buffer as a small box under its
core; an arrow from each buffer to every core that reads it (curved where it skips cores: the
residual adds). The input stream enters the input buffer; the head streams the logits out.
"""

from __future__ import annotations

from pathlib import Path

from hqflow.export.rtl.seq_ops import SEQ_OPS
from hqflow.io import atomic_write

__all__ = ["draw"]

PER_ROW = 6
COLORS = {"conv_lif": "#9ecae1", "linear_lif": "#a1d99b", "ssa": "#fdae6b", "maxpool": "#dadaeb",
          "add": "#fdd0a2", "head": "#fc9272"}


def draw(plan, path: Path) -> None:
    """Render `plan` (top.TopPlan) as a PNG at `path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    items = [("input", None)] + [(core.node, core) for core in plan.cores]
    rows = -(-len(items) // PER_ROW)
    fig, ax = plt.subplots(figsize=(2.3 * PER_ROW, 2.1 * rows + 1.2))
    where = {}
    for i, (name, core) in enumerate(items):
        row, col = divmod(i, PER_ROW)
        col = col if row % 2 == 0 else PER_ROW - 1 - col      # snake, so that neighbours stay close
        x, y = col * 2.3, -row * 2.1
        where[name] = (x, y)
        if core is None:
            label, color = f"input stream\n{plan.frame[0]}x{plan.frame[1]}x{plan.frame[2]}, {plan.in_bits} bit", "#eeeeee"
        else:
            extra = f", P {core.lanes}" if core.lanes else ""
            label, color = f"{core.index}: {name}\n{core.op}{extra}", COLORS.get(core.op, "#eeeeee")
        ax.add_patch(FancyBboxPatch((x, y), 1.9, 0.8, boxstyle="round,pad=0.03", fc=color, ec="black", lw=0.8))
        ax.text(x + 0.95, y + 0.4, label, ha="center", va="center", fontsize=7)
        buffer = next((b for b in plan.buffers if b.node == name), None)
        if buffer is not None:
            ax.add_patch(FancyBboxPatch((x + 0.35, y - 0.55), 1.2, 0.35, boxstyle="square,pad=0.01", fc="white",
                                        ec="gray", lw=0.6))
            ax.text(x + 0.95, y - 0.375, f"buffer {buffer.words} x {buffer.pack * buffer.bits} b", ha="center",
                    va="center", fontsize=6, color="dimgray")
        elif core is not None and SEQ_OPS[core.op].logits:
            ax.text(x + 0.95, y - 0.375, f"logits: {plan.classes} x {plan.logit_bits} b stream", ha="center",
                    va="center", fontsize=6, color="darkred")
    by_ident = {b.ident: b.node for b in plan.buffers}
    order = {name: i for i, (name, _) in enumerate(items)}
    for core in plan.cores:
        tx, ty = where[core.node]
        for src in dict.fromkeys(core.reads):
            sx, sy = where[by_ident[src]]
            skip = order[core.node] - order[by_ident[src]] > 1
            if sy == ty and not skip:                  # the next core in the row: buffer side to box side
                right = tx > sx
                start = (sx + (1.55 if right else 0.35), sy - 0.375)
                end = (tx + (0.0 if right else 1.9), ty + 0.4)
            else:                                      # down a row, or a skip: buffer bottom to box top
                start, end = (sx + 0.95, sy - 0.55), (tx + 0.95, ty + 0.8)
            ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, lw=0.7,
                                         color="gray" if skip else "black",
                                         connectionstyle=f"arc3,rad={0.25 if skip else 0.0}"))
    ax.text(0, 1.3, f"hqflow top: layer-sequential, one core runs at a time (the sequencer starts each and waits "
                    f"for its done), {plan.time_steps} time steps per inference; tokens are an alias (channels last)",
            fontsize=8)
    ax.set_xlim(-0.3, 2.3 * PER_ROW)
    ax.set_ylim(-2.1 * rows + 0.9, 1.7)
    ax.axis("off")
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def plot_cycles(report: dict, manifest: dict, path: Path) -> None:
    """cycles.png: per core its cycles per inference (mean over the co-simulated samples), split into
    the part no input changes (the scan of every input and the LIF pass: the formula at zero nonzero
    inputs) and the part the spikes cost (the rest: nonzero inputs x lane groups), with each core's
    measured input rate, and the latency at the export's clock in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hqflow.export.rtl.top import SEQUENCER_CYCLES, core_cycles

    steps = int(manifest["time_steps"])
    names, fixed, events, labels = [], [], [], []
    for core in manifest["cores"]:
        item = report["nodes"][core["node"]]
        base = sum(SEQUENCER_CYCLES + core_cycles(core["op"], core["params"], 0, t == steps - 1)
                   for t in range(steps))
        names.append(core["node"])
        fixed.append(base)
        events.append(max(0.0, item["cycles_per_inference"] - base))
        labels.append(f"P {core['lanes']}" if core.get("lanes") else "")
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(names) + 1.6))
    y = range(len(names))
    ax.barh(y, fixed, color="#bdbdbd", label="fixed: scan every input, LIF pass (formula at 0 spikes)")
    ax.barh(y, events, left=fixed, color="#3182bd", label="event-driven: nonzero inputs x lane groups")
    for i, (f, e, lab) in enumerate(zip(fixed, events, labels)):
        ax.text(f + e, i, f" {f + e:,.0f} {lab}", va="center", fontsize=7)
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("cycles per inference (mean over the co-simulated samples)")
    lat = report["latency_cycles"]["mean"]
    ax.set_title(f"{lat:,.0f} cycles per inference = {report['latency_us'] / 1e3:.2f} ms at a {report['clock_mhz']:g} MHz "
                 f"target clock ({report['samples']} samples, T {steps})", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def draw_stream(schedule, path: Path) -> None:
    """Render a streaming schedule (stream.Schedule) as a PNG at `path`: each core a box (its lanes and
    cycles per inference; the darker, the nearer the pipeline's interval), an arrow per stream from its
    producer to each consumer, skip inputs (through a FIFO) curved and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    items = [("input", None)] + [(core.node, core) for core in schedule.cores]
    rows = -(-len(items) // PER_ROW)
    fig, ax = plt.subplots(figsize=(2.3 * PER_ROW, 1.7 * rows + 1.2))
    where, producer = {}, {}
    interval = schedule.interval
    for i, (name, core) in enumerate(items):
        row, col = divmod(i, PER_ROW)
        col = col if row % 2 == 0 else PER_ROW - 1 - col
        x, y = col * 2.3, -row * 1.7
        where[name] = (x, y)
        if core is None:
            c, h, w = schedule.frame
            label, color, alpha = f"input stream\n{h}x{w}x{c}, T x {schedule.in_bits} b", "#eeeeee", 1.0
        else:
            extra = f", P {core.lanes}" if core.lanes else ""
            label = f"{core.index}: {name}\n{core.op}{extra}\n{core.cycles:,} cycles"
            color, alpha = COLORS.get(core.op, "#eeeeee"), 0.35 + 0.65 * core.cycles / interval
        ax.add_patch(FancyBboxPatch((x, y), 1.9, 0.9, boxstyle="round,pad=0.03", fc=color, ec="black", lw=0.8,
                                    alpha=alpha))
        ax.text(x + 0.95, y + 0.45, label, ha="center", va="center", fontsize=7)
    for node, ident_ in schedule.node_stream.items():
        producer.setdefault(ident_, node)
    order = {name: i for i, (name, _) in enumerate(items)}
    fifo_of = {q.output for q in schedule.fifos} | {f"{q.output}_f{k}" for q in schedule.fifos for k in range(8)}
    for core in schedule.cores:
        tx, ty = where[core.node]
        for port in core.inputs:
            base = max((s.ident for s in schedule.streams if port == s.ident or port.startswith(s.ident + "_")),
                       key=len)  # (the longest: a node's name may extend another's)
            src = producer[base]
            sx, sy = where[src]
            skip = order[core.node] - order[src] > 1
            if sy == ty and not skip:                  # the next core in the row: side to side
                start, end = ((sx + 1.9, sy + 0.45), (tx, ty + 0.45)) if tx > sx else \
                    ((sx, sy + 0.45), (tx + 1.9, ty + 0.45))
            else:                                      # down a row, or a skip: bottom to top
                start, end = (sx + 0.95, sy), (tx + 0.95, ty + 0.9)
            ax.add_patch(FancyArrowPatch(start, end,
                                         arrowstyle="-|>", mutation_scale=8, lw=0.7,
                                         color="gray" if skip else "black",
                                         connectionstyle=f"arc3,rad={0.25 if skip else 0.0}"))
            if port in fifo_of:
                ax.text((sx + tx) / 2 + 0.95, (sy + ty) / 2 + 0.2, "FIFO", fontsize=6, color="dimgray")
    ax.text(0, 1.25, f"hqflow top: a streaming pipeline, every core at once, all {schedule.time_steps} time steps of "
                     f"a neuron together; interval {interval:,} cycles by the formulas (the slowest core)", fontsize=8)
    ax.set_xlim(-0.3, 2.3 * PER_ROW)
    ax.set_ylim(-1.7 * rows + 0.7, 1.6)
    ax.axis("off")
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def plot_timeline(report: dict, path: Path) -> None:
    """cycles.png of a streaming co-simulation: per node the span of its output stream for one
    inference alone (first to last beat, counted from the first input beat), with each core's busy
    cycles (its formula) in the label, and the latency and the interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spans = report.get("spans", {})
    names = [n for n, (a, b) in spans.items() if a >= 0]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(names) + 1.6))
    for i, name in enumerate(names):
        first, last = spans[name]
        item = report["nodes"].get(name)
        ax.barh(i, max(1, last - first), left=first, color=COLORS.get(item["op"] if item else "", "#bdbdbd"),
                edgecolor="black", lw=0.4)
        label = f" {item['cycles_per_inference']:,.0f} busy" + (f", P {item['lanes']}" if item and item["lanes"]
                                                                 else "") if item else ""
        ax.text(last, i, label, va="center", fontsize=7)
    lat = report["latency_cycles"]["mean"]
    ax.axvline(lat, color="darkred", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("cycles from the first input beat (one inference alone): each node's output stream, first to last beat")
    title = f"latency {lat:,.0f} cycles = {report['latency_us']:.1f} us at a {report['clock_mhz']:g} MHz target clock"
    if report.get("interval_cycles"):
        title += f"; back to back one inference every {report['interval_cycles']:,.0f} cycles"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)

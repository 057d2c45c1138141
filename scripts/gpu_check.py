"""A few steps of the paper configuration on the CPU and on a CUDA GPU, compared (scripts/gpu_check.sh).

Both devices start from the same weights (built on the CPU from one seed) and see the same batches
(fabricated event frames, seeded on the CPU: no data set needed) and the same Gumbel noise (drawn
from the CPU generator on every device, `supernet.gumbel_softmax`). The check runs

    fp32 training   --steps steps of AdamW on cross-entropy (train.lr, train.weight_decay)
    search          --steps steps, each an alpha step (hard sample, CE + lambda * energy) and a
                    weight step (soft sample, CE), from the trained weights, as `hqflow search` does

and prints, per step, the loss on each device and their relative difference, then the derived plan
(each layer's most probable format) of each device. Exit status: 0 when every loss agrees within
--tolerance (relative) and the plans agree on every layer whose top two probabilities are not a
near tie (--tie); 1 otherwise; 3 when CUDA is not available (nothing is compared).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "paper.yaml"))
    ap.add_argument("--device", default="cuda", help="the GPU to compare with the CPU (cuda or cuda:N)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="samples per step (fabricated)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--tolerance", type=float, default=0.02, help="largest relative loss difference")
    ap.add_argument("--tie", type=float, default=0.01, help="plan layers whose top-2 probabilities differ by less "
                                                             "than this may differ")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available on this machine (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda}); nothing compared. Run it on a machine with an NVIDIA GPU.", file=sys.stderr)
        return 3

    from hqflow.config import load_config
    from hqflow.search.distributed import resolve_device, start_distributed

    cfg = load_config(args.config)
    if cfg.model.num_classes == 0:
        cfg = cfg.replace("model", num_classes=args.classes)
    gpu = resolve_device(args.device)
    start_distributed(gpu)  # a single process: sets the GPU and turns TF32 off, as every hqflow stage does
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, cfg.data.time_steps, cfg.model.in_channels, cfg.model.img_size, cfg.model.img_size)
    batches = [(torch.poisson(torch.full(shape, 0.05), generator=g),
                torch.randint(0, cfg.model.num_classes, (args.batch,), generator=g)) for _ in range(2 * args.steps)]
    print(f"gpu_check: {args.config}: D {cfg.model.embed_dim}, depth {cfg.model.depth}, T {cfg.data.time_steps}, "
          f"{cfg.model.img_size}x{cfg.model.img_size}, batch {args.batch} (fabricated), {args.steps} steps; "
          f"cpu against {gpu} ({torch.cuda.get_device_name(gpu)})")
    runs = {}
    for device in (torch.device("cpu"), gpu):
        t0 = time.perf_counter()
        runs[device.type] = _run(cfg, device, batches, args.steps)
        print(f"  {device}: {time.perf_counter() - t0:.1f} s")
    cpu, cuda = runs["cpu"], runs["cuda"]
    failed = False
    print(f"{'step':<18}{'cpu':>12}{'cuda':>12}{'rel diff':>12}")
    for name in cpu["losses"]:
        a, b = cpu["losses"][name], cuda["losses"][name]
        diff = abs(a - b) / max(abs(a), 1e-12)
        bad = diff > args.tolerance
        failed |= bad
        print(f"{name:<18}{a:>12.6f}{b:>12.6f}{diff:>12.2e}{'  > tolerance' if bad else ''}")
    differing = []
    for layer, (fa, probs) in cpu["plan"].items():
        fb = cuda["plan"][layer][0]
        if fa != fb:
            top = sorted(probs, reverse=True)
            tie = top[0] - top[1] < args.tie
            differing.append(layer)
            failed |= not tie
            print(f"plan {layer}: cpu {fa}, cuda {fb}{' (a near tie on the cpu)' if tie else ''}")
    alpha_diff = max((cpu["alpha"][k] - cuda["alpha"][k]).abs().max().item() for k in cpu["alpha"])
    print(f"plan: {len(cpu['plan']) - len(differing)} of {len(cpu['plan'])} layers the same format; "
          f"largest |alpha_cpu - alpha_cuda| {alpha_diff:.2e}")
    print(f"gpu_check: {'FAILED' if failed else 'ok'} (tolerance {args.tolerance:g} relative)")
    return 1 if failed else 0


def _run(cfg, device: torch.device, batches, steps: int) -> dict:
    """Train `steps` fp32 steps, then `steps` search steps, on `device`; the losses, plan and alphas."""
    from hqflow.cost import cost_matrix, layer_cost, layer_shapes, load_energy_table
    from hqflow.numerics import Candidate
    from hqflow.search import supernet
    from hqflow.search.model import Spikformer
    from hqflow.search.quant_search import temperature

    torch.manual_seed(0)
    model = Spikformer(cfg.model).to(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    losses = {}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    model.train()
    for i in range(steps):
        x, y = batches[i]
        loss = criterion(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[f"train {i}"] = loss.item()
    sc = cfg.search
    candidates = tuple(Candidate.parse(n) for n in sc.candidates)
    supernet.to_supernet(model, candidates)
    model.to(device)
    table = load_energy_table(sc.energy_table)
    shapes = layer_shapes(cfg.model, cfg.data.time_steps)
    energy = torch.tensor(cost_matrix(shapes, candidates, table), dtype=torch.float64, device=device)
    energy_fp32 = sum(layer_cost(s, Candidate("fp32", 32), table).energy_pj for s in shapes)
    w_opt = torch.optim.AdamW(supernet.weight_parameters(model), lr=sc.weight_lr, weight_decay=sc.weight_decay)
    a_opt = torch.optim.Adam(supernet.alpha_parameters(model), lr=sc.alpha_lr)
    for i in range(steps):
        tau = temperature(i, steps, sc.tau_start, sc.tau_end)
        (xa, ya), (x, y) = batches[steps + i], batches[i]
        supernet.set_sampling(model, tau, hard=True)
        ce_a = criterion(model(xa.to(device)), ya.to(device))
        e_pct = 100 * supernet.expected_energy(model, energy) / energy_fp32
        a_opt.zero_grad(set_to_none=True)
        (ce_a + sc.hw_lambda * e_pct.float() / 100).backward()
        a_opt.step()
        supernet.set_sampling(model, tau, hard=False, learn_alpha=False)
        ce_w = criterion(model(x.to(device)), y.to(device))
        w_opt.zero_grad(set_to_none=True)
        ce_w.backward()
        w_opt.step()
        losses[f"search {i} alpha"] = ce_a.item()
        losses[f"search {i} weight"] = ce_w.item()
    layers = supernet.searchable(model)
    plan = {n: (m.candidates[int(m.alpha.argmax())].name, m.probabilities().tolist()) for n, m in layers.items()}
    return {"losses": losses, "plan": plan, "alpha": {n: m.alpha.detach().cpu() for n, m in layers.items()}}


if __name__ == "__main__":
    sys.exit(main())

"""Devices and processes: which device a stage runs on, and the process group under `torchrun`.

Devices (`resolve_device`): "auto" (CUDA when present, else the CPU), "cpu", "cuda", "cuda:N".
Under `torchrun`, "cuda" (and "auto" on a CUDA machine) is this process's GPU, cuda:LOCAL_RANK.

Processes: every training stage (train, search, finetune, sweep) runs unchanged under
`torchrun --nproc_per_node N`. The group is started on first use (`rank_and_world`) with the
backend of the device (`start_distributed`: nccl for CUDA, gloo for the CPU); each rank trains on
its shard of every epoch, gradients are averaged over the ranks (`all_reduce_grads`, or DDP), so
the parameters stay identical on every rank, and only rank 0 (`is_main_process`) writes files or
prints. BatchNorm running statistics are each rank's own (an EMA over its shard's batches) and
are averaged over the ranks (`average_buffers`) before every evaluation and checkpoint, so the
evaluated and saved model is the same on every rank. A single process never calls a collective:
its numbers are those of a run without any of this.

Test hook: with HQFLOW_TEST_STEP_HASH=DIR in the environment, every rank appends a line per
optimizer step (and per epoch end) to DIR/rank<r>.txt: the step, a hash of the parameters (and of
torch's CPU RNG state), and a hash of the batch the rank trained on (`record_step`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from hqflow.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def describe_processor(device: torch.device | str = "cpu") -> str:
    """What runs the model, in words: the GPU's name, or the CPU's model, the instruction set torch's CPU
    kernels use (its capability: results differ slightly between them) and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    model = platform.processor() or "an unnamed CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, torch's CPU kernels {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


def resolve_device(spec: str | torch.device | None = "cpu", option: str = "--device") -> torch.device:
    """The torch device of `spec` ("auto", "cpu", "cuda", "cuda:N"); a bad or unavailable one is a
    UserError naming `option` and the value. Under torchrun, "cuda" / "auto" is cuda:LOCAL_RANK."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = "cpu" if spec is None else str(spec).strip()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec[5:]
        if spec != "cuda" and not (index.isdigit() and str(int(index)) == index):
            raise UserError(f"{option} {spec}: not a device; expected {DEVICE_CHOICES} (N a GPU index, e.g. cuda:0)")
        if not torch.cuda.is_available():
            raise UserError(f"{option} {spec}: CUDA is not available on this machine (no GPU, or a CPU-only "
                            "torch build); use --device cpu or auto")
        count = torch.cuda.device_count()
        number = local_rank if spec == "cuda" else int(index)
        if number >= count:
            raise UserError(f"{option} {spec}: GPU {number} does not exist (this machine has {count}: cuda:0"
                            f"{f' .. cuda:{count - 1}' if count > 1 else ''})")
        return torch.device("cuda", number)
    raise UserError(f"{option} {spec}: not a device; expected {DEVICE_CHOICES}")


def start_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); under torchrun (WORLD_SIZE > 1) starts the group with the backend of
    `device` (nccl on CUDA, gloo on the CPU) and makes a CUDA device this process's current one."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # fp32 means fp32: TF32 would round every weight (the quantized levels too) to 10 mantissa bits in
        # the convolutions and matmuls; --amp is the way to trade precision for speed
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank_and_world()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a torch.distributed process group is running.

    Under `torchrun` (WORLD_SIZE > 1 in the environment) a group not yet started is started here
    with gloo (`start_distributed` chooses the backend by device: call it first).
    """
    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shutdown_distributed(wait: bool = True) -> None:
    """End the process group `rank_and_world` started (without this, gloo can abort at interpreter exit).

    `wait`: first wait for every rank (the normal end); a rank that failed passes False and leaves at
    once (the others may never reach the barrier; torchrun ends them when this one exits)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the process that writes files and prints."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every rank (nothing when not distributed): e.g. until rank 0 has written a run's files."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def in_run_folder(folder, work):
    """`work()` writing into `folder` (a hqflow.io.RunFolder on rank 0, None on the other ranks): the
    folder is finished when work returns and abandoned when it raises; every rank returns only once
    rank 0's files are complete. Returns work's result."""
    try:
        result = work()
    except BaseException:
        if folder is not None:
            folder.abandon()
        raise
    if folder is not None:
        folder.finish()
    barrier()
    return result


def _average_in_place(tensors: list[torch.Tensor], world: int) -> None:
    """Replace each tensor by its mean over the ranks: one flat all-reduce (sum, then divide by the
    world size: the same bits on every rank)."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_grads(params: list[nn.Parameter]) -> None:
    """Average the gradients of `params` over the ranks, in place, as one flat all-reduce (sum, then
    divide by the world size: the same bits on every rank). Parameters without a gradient keep none
    (the same ones on every rank: every rank runs the same graph). No-op in a single process."""
    world = rank_and_world()[1]
    if world > 1:
        _average_in_place([p.grad for p in params if p.grad is not None], world)


def average_buffers(model: nn.Module) -> None:
    """Make the BatchNorm running statistics the mean over the ranks (floating buffers averaged;
    counters such as num_batches_tracked are equal on every rank and kept). No-op in one process.

    running_mean averaged is exactly the EMA of the global batch's means (equal shards); running_var
    averaged is the mean of the shards' variances (it leaves out the spread between shard means)."""
    world = rank_and_world()[1]
    if world > 1:
        _average_in_place([b for b in model.buffers() if b.is_floating_point()], world)


def mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """The mean of each number over the ranks (float64); the numbers themselves in one process."""
    if rank_and_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / rank_and_world()[1]).tolist()


def autocast(device: torch.device, amp: bool):
    """The forward's mixed precision: bf16 autocast on `device` when `amp`, else nothing at all.

    bf16, never fp16, so no loss scaling is needed; the fake quantizers, the Gumbel sample and the
    hardware cost are computed in fp32 whatever the autocast (`supernet._Quantized.quant_weight`)."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def to_cpu(obj):
    """A copy of nested dicts / lists / tuples of tensors with every tensor on the CPU (a checkpoint
    saved from any device loads on any machine)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# ----------------------------------------------------------------------------- test hook

STEP_HASH_ENV = "HQFLOW_TEST_STEP_HASH"


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def record_step(kind: str, step: int, model: nn.Module, batch: torch.Tensor | None = None) -> None:
    """Test hook (HQFLOW_TEST_STEP_HASH=DIR): append `kind step params=<hash> rng=<hash> batch=<hash>`
    to DIR/rank<r>.txt; kind "epoch" hashes the whole state dict (buffers too). Unset: nothing."""
    folder = os.environ.get(STEP_HASH_ENV, "").strip()
    if not folder:
        return
    rank = rank_and_world()[0]
    tensors = model.state_dict().values() if kind == "epoch" else [p for p in model.parameters()]
    line = f"{kind} {step} params={_digest(tensors)} rng={_digest([torch.get_rng_state()])}"
    if batch is not None:
        line += f" batch={_digest([batch])}"
    path = Path(folder) / f"rank{rank}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(line + "\n")

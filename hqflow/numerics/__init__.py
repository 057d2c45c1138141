"""The integer semantics of the deployed model.

Every integer op of the deployed model is defined here once, with its widths, its named rounding
and its overflow rule; the NumPy simulator runs them (with the fast products of numerics/fast.py,
tested equal), the HLS kernels implement them, and the torch fake quantizers
(search/quantizers.py) reproduce the weight codes bit for bit. NumPy only. One module per concern,
each importing only the ones above it:

    bounds.py    the number rules: round_half_up (the one rounding), bits_for (widths), the
                 accumulator, attention and membrane bounds, the int64 overflow check
    codes.py     weight codes: quantize / dequantize per format, effective integer weights
                 (w_eff * weight_scale = the real weight), the DeployGraph's code tables
    formats.py   the format vocabulary: Candidate (fp32, uniform-b, po2-b, po2z-b) and its level sets
    rom.py       the hardware's weight ROM layout: w_eff <-> b-bit codes <-> 64-bit words
    folding.py   export-time folding: BN and scales into the integer LIF constants, the head bias
    ops.py       the reference integer ops: accumulation, LIF charge / fire / reset, OR pooling,
                 attention, head logits

Every public name is re-exported here: callers write `from hqflow import numerics; numerics.X`.
"""

from hqflow.numerics import bounds, codes, folding, formats, ops, rom
from hqflow.numerics.bounds import *  # noqa: F403  (each module's __all__ lists its public names)
from hqflow.numerics.codes import *  # noqa: F403
from hqflow.numerics.folding import *  # noqa: F403
from hqflow.numerics.formats import *  # noqa: F403
from hqflow.numerics.ops import *  # noqa: F403
from hqflow.numerics.rom import *  # noqa: F403

SUBMODULES = (bounds, codes, formats, rom, folding, ops)  # in dependency order
__all__ = [name for module in SUBMODULES for name in module.__all__]

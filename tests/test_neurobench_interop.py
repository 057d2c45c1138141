"""`hqflow metrics` against NeuroBench itself (the extra `neurobench`, `make test-interop`): its Benchmark
with its own metrics on the torch model, hqflow's on the integer model lowered from it.

Equal: connection sparsity (NeuroBench rounds it to 4 decimals), activation sparsity, synaptic operations
(Dense, Effective_MACs, Effective_ACs: the conv and linear layers, the only ones NeuroBench counts) and the
accuracy. hqflow counts more, and the test checks that it says so: the attention's spike products
(synaptic_operations_all), and the footprint at the deployed widths (NeuroBench's counts every torch tensor
at 4 bytes). NeuroBench's MembraneUpdates reads snntorch neurons' `mem` only: on spikingjelly neurons it
records nothing, so the membrane updates are hqflow's alone.
"""

from __future__ import annotations

import pytest

neurobench = pytest.importorskip("neurobench", reason="the extra `neurobench` is not installed: make "
                                 "venv-neurobench && make test-interop NEUROBENCH_PYTHON=.venv-neurobench/bin/python")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, Footprint  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402
from spikingjelly.activation_based import neuron  # noqa: E402

from hqflow.config import config_from_dict  # noqa: E402
from hqflow.data import load_dataset  # noqa: E402
from hqflow.export.lower import lower  # noqa: E402
from hqflow.search import supernet  # noqa: E402
from hqflow.search.model import Spikformer  # noqa: E402
from hqflow.sim.metrics import metrics  # noqa: E402
from hqflow.sim.run import batches  # noqa: E402

from conftest import mixed_format_model  # noqa: E402

pytestmark = pytest.mark.interop

CFG = config_from_dict({"model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1,
                                  "pools": [True, True, False, False], "num_classes": 10},
                        "data": {"dataset": "digits-dvs", "time_steps": 3}})
SAMPLES, BATCH = 48, 16


def plain_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The QAT model as NeuroBench reads a model: plain Conv2d / Linear layers holding the quantized weights."""
    state = {k: v for k, v in model.state_dict().items() if ".quantizers." not in k and not k.endswith(".alpha")}
    for name, layer in supernet.weight_layers(model).items():
        state[f"{name}.weight"] = layer.quant_weight().detach()
    plain = Spikformer(CFG.model)
    plain.load_state_dict(state)
    return plain.eval()


def test_hqflow_metrics_equal_neurobench():
    model = mixed_format_model(0, CFG, beta=(0.5, 1.5)).eval()
    graph = lower(model, CFG)
    frames = load_dataset("digits-dvs", "test", CFG.data.time_steps, CFG.model.img_size)
    ours = metrics(graph, batches(frames, BATCH, SAMPLES))

    data = list(batches(frames, BATCH, SAMPLES))
    dataset = torch.utils.data.TensorDataset(torch.tensor(np.concatenate([x for x, _ in data]), dtype=torch.float32),
                                             torch.tensor(np.concatenate([y for _, y in data])))
    wrapped = TorchModel(plain_copy(model))
    wrapped.add_activation_module(neuron.BaseNode)  # spikingjelly's neurons are its activation layers
    with torch.no_grad():
        theirs = Benchmark(wrapped, torch.utils.data.DataLoader(dataset, batch_size=BATCH), [],
                           [lambda logits: logits.argmax(-1)],
                           [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations,
                                                              ClassificationAccuracy]]).run(quiet=True)
    nb = ours["neurobench"]
    assert round(nb["connection_sparsity"], 4) == theirs["ConnectionSparsity"]
    assert nb["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"], abs=1e-12)
    assert nb["classification_accuracy"] == pytest.approx(theirs["ClassificationAccuracy"], abs=1e-12)
    for key in ("Dense", "Effective_MACs", "Effective_ACs"):
        assert nb["synaptic_operations"][key] == theirs["SynapticOperations"][key], key
    # where hqflow counts more, it says so
    hq = ours["hqflow"]
    assert hq["synaptic_operations_all"]["Effective_ACs"] > nb["synaptic_operations"]["Effective_ACs"]
    assert nb["footprint"] < theirs["Footprint"] and any("Footprint" in note for note in ours["notes"])
    assert any("attention" in note for note in ours["notes"])

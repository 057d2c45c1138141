# hqflow: `make demo` runs the whole flow on the embedded data set, `make test` the test suite.
# Both create .venv first if it is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
RUNS   ?= runs/demo
OUT    ?= out/demo
# torch's OpenMP threads spin-wait between parallel regions. Alone on the machine that is the
# fastest (measured: a tiny-config QAT step 0.11 s spinning, 0.19 s with OMP_WAIT_POLICY=PASSIVE);
# on cores shared with other busy processes, run `OMP_WAIT_POLICY=PASSIVE make ...` instead.

.PHONY: venv venv-qkeras venv-neurobench hw-tools demo demo-spikformer demo-sdt paper csim rtlsim synth pnr bitstream test test-slow test-interop clean

venv: $(VENV)/.installed

# torch is pinned to the CPU build first; spikingjelly and tonic come without their own
# dependency trees (spikingjelly's unpinned torchvision/torchaudio would replace torch);
# the packages they really import are listed in pyproject.toml with the rest.
define install_base  # the virtual environment $(1): hqflow with its dependencies and the test, hls and rtl extras
	$(1)/bin/python -m pip --disable-pip-version-check -q install torch==2.13.0
	$(1)/bin/python -m pip --disable-pip-version-check -q install --no-deps spikingjelly==2.0.0 tonic==1.7.0
	$(1)/bin/python -m pip --disable-pip-version-check -q install $$($(1)/bin/python -c "import tomllib; \
	  p = tomllib.load(open('pyproject.toml', 'rb'))['project']; skip = ('torch', 'spikingjelly', 'tonic'); \
	  extras = [d for x in ('test', 'hls', 'rtl') for d in p['optional-dependencies'][x]]; \
	  print(' '.join(d for d in p['dependencies'] + extras if not d.startswith(skip)))")
	$(1)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
endef

$(VENV)/.installed: pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(call install_base,$(VENV))
	@touch $@

LAMBDA ?= 0.5
EXPORT ?= $(OUT)/l$(LAMBDA)
RTL_EXPORT ?= $(OUT)/l$(LAMBDA)-rtl
# the demo co-simulates the first RTL_DEMO_SAMPLES test samples of the RTL export (all of them: make rtlsim)
RTL_DEMO_SAMPLES ?= 10

# MODEL=sdt: the second model family, the Spike-driven Transformer (configs/sdt-tiny.yaml), through training,
# search, QAT, report, the integer model (NumPy simulator against torch), HLS C++ (C simulation in both
# builds) and Verilog (co-simulation of RTL_DEMO_SAMPLES samples).
MODEL ?= spikformer
SDT_RUNS ?= runs/sdt
SDT_OUT ?= out/sdt

demo: demo-$(MODEL)

demo-sdt: venv
	$(VENV)/bin/hqflow train --config configs/sdt-tiny.yaml --dataset digits-dvs -o $(SDT_RUNS)/fp32 --force
	$(VENV)/bin/hqflow search --from $(SDT_RUNS)/fp32 --lambda $(LAMBDA) -o $(SDT_RUNS)/l$(LAMBDA) --force
	$(VENV)/bin/hqflow finetune --plan $(SDT_RUNS)/l$(LAMBDA)/plan.json -o $(SDT_RUNS)/l$(LAMBDA)/qat --force
	$(VENV)/bin/hqflow report $(SDT_RUNS)/l$(LAMBDA)
	$(VENV)/bin/hqflow figures $(SDT_RUNS)/l$(LAMBDA)
	$(VENV)/bin/hqflow export $(SDT_RUNS)/l$(LAMBDA)/qat --target hls -o $(SDT_OUT)/l$(LAMBDA) --force
	$(VENV)/bin/hqflow sim $(SDT_OUT)/l$(LAMBDA) --compare-torch $(SDT_RUNS)/l$(LAMBDA)/qat
	$(VENV)/bin/hqflow csim $(SDT_OUT)/l$(LAMBDA)
	$(VENV)/bin/hqflow csim $(SDT_OUT)/l$(LAMBDA) --ap-arithmetic
	$(VENV)/bin/hqflow export $(SDT_RUNS)/l$(LAMBDA)/qat --target rtl -o $(SDT_OUT)/l$(LAMBDA)-rtl --force
	$(VENV)/bin/hqflow rtlsim $(SDT_OUT)/l$(LAMBDA)-rtl --samples $(RTL_DEMO_SAMPLES)
	@echo "demo outputs (Spike-driven Transformer):"
	@echo "  fp32 run:    $(SDT_RUNS)/fp32"
	@echo "  search:      $(SDT_RUNS)/l$(LAMBDA) (plan.json); QAT: $(SDT_RUNS)/l$(LAMBDA)/qat; report: $(SDT_RUNS)/l$(LAMBDA)/report"
	@echo "  export:      $(SDT_OUT)/l$(LAMBDA) (graph.json, tensors.npz: the integer model; hls/: the C++ project)"
	@echo "  RTL:         $(SDT_OUT)/l$(LAMBDA)-rtl/rtl (hqflow_top.v, README.md, architecture.png, cycles.json)"

demo-spikformer: venv
	$(VENV)/bin/hqflow train --config configs/tiny.yaml --dataset digits-dvs -o $(RUNS)/fp32 --force
	$(VENV)/bin/hqflow search --from $(RUNS)/fp32 --lambda $(LAMBDA) -o $(RUNS)/l$(LAMBDA) --force
	$(VENV)/bin/hqflow finetune --plan $(RUNS)/l$(LAMBDA)/plan.json -o $(RUNS)/l$(LAMBDA)/qat --force
	$(VENV)/bin/hqflow report $(RUNS)/l$(LAMBDA)
	$(VENV)/bin/hqflow figures $(RUNS)/l$(LAMBDA)
	$(VENV)/bin/hqflow export $(RUNS)/l$(LAMBDA)/qat --target hls -o $(OUT)/l$(LAMBDA) --force
	$(VENV)/bin/hqflow sim $(OUT)/l$(LAMBDA) --compare-torch $(RUNS)/l$(LAMBDA)/qat
	$(VENV)/bin/hqflow csim $(OUT)/l$(LAMBDA)
	$(VENV)/bin/hqflow csim $(OUT)/l$(LAMBDA) --ap-arithmetic
	$(VENV)/bin/hqflow export $(RUNS)/l$(LAMBDA)/qat --target rtl -o $(RTL_EXPORT) --force
	$(VENV)/bin/hqflow rtlsim $(RTL_EXPORT) --samples $(RTL_DEMO_SAMPLES)
	@echo "demo outputs:"
	@echo "  fp32 run:    $(RUNS)/fp32 (checkpoint.pt, metrics.jsonl, curves.png)"
	@echo "  search:      $(RUNS)/l$(LAMBDA) (plan.json, search_log.jsonl, probabilities.png)"
	@echo "  QAT:         $(RUNS)/l$(LAMBDA)/qat"
	@echo "  report:      $(RUNS)/l$(LAMBDA)/report (report.md, report.json, plots; figures/: the paper's Fig. 3 and 5)"
	@echo "  export:      $(OUT)/l$(LAMBDA) (graph.json, tensors.npz: the integer model; hls/: the C++ project)"
	@echo "  RTL:         $(RTL_EXPORT)/rtl (hqflow_top.v, README.md, architecture.png, cycles.json)"

# The paper's pipeline for one data set (search/paper.py): fp32 training, the lambda sweep with QAT,
# the reports, the export of the chosen plan; rerun the same command to continue an interrupted run.
#   make paper DATASET=dvs128-gesture DATA_ROOT=/data [NPROC=4] [FINETUNE_EPOCHS=0] [DRY_RUN=1]
# DATASET: dvs128-gesture, cifar10-dvs or n-caltech101 (configs/paper-$(DATASET).yaml); NPROC > 1 runs each
# training stage under torchrun; FINETUNE_EPOCHS=0 is the paper's variant (no QAT); DRY_RUN=1 prints the
# stages and the time projected from steps measured on this machine; PAPER_ARGS passes more options.
DATASET ?= dvs128-gesture
DATA_ROOT ?=
NPROC ?= 1
PAPER_RUNS ?= runs/paper
FINETUNE_EPOCHS ?=
DRY_RUN ?=
PAPER_ARGS ?=

paper: venv
	@test -f configs/paper-$(DATASET).yaml || { echo "make paper: DATASET=$(DATASET) has no configs/paper-$(DATASET).yaml;" \
	  "choose dvs128-gesture, cifar10-dvs or n-caltech101" >&2; exit 2; }
	$(VENV)/bin/hqflow paper --config configs/paper-$(DATASET).yaml $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
	  --nproc $(NPROC) $(if $(FINETUNE_EPOCHS),--finetune-epochs $(FINETUNE_EPOCHS)) $(if $(DRY_RUN),--dry-run) \
	  -o $(PAPER_RUNS)/$(DATASET) $(PAPER_ARGS)

# C simulation of an HLS export (default: the demo's), bit for bit against the NumPy simulator
csim: venv
	$(VENV)/bin/hqflow csim $(EXPORT)

# Verilator co-simulation of the demo's RTL export on every test sample of its testbench
rtlsim: venv
	$(VENV)/bin/hqflow rtlsim $(RTL_EXPORT)

# Yosys synthesis of the demo's RTL top (per core, total, the devices it fits)
synth: venv hw-tools
	$(VENV)/bin/hqflow synth $(RTL_EXPORT)

# The demo's streaming top folded for a Lattice ECP5-85F (ECP5_FOLD; the default folding needs more LUT4s
# than its 83,640; the small memories in block RAM: an ECP5's LUT RAM is 16 words deep, and this build
# runs short of LUT4s, not of DP16KDs), exported from the demo's QAT run (made by `make demo` if missing).
ECP5_EXPORT ?= $(OUT)/l$(LAMBDA)-ecp5
ECP5_FOLD   ?= --lanes 16 --memory-style block
BOARD       ?= ulx3s-85f
$(ECP5_EXPORT)/rtl/top.json:
	@test -f $(RUNS)/l$(LAMBDA)/qat/checkpoint.pt || $(MAKE) demo
	$(VENV)/bin/hqflow export $(RUNS)/l$(LAMBDA)/qat --target rtl $(ECP5_FOLD) -o $(ECP5_EXPORT) --force

# open place and route of that top on an LFE5UM5G-85F-8 (nextpnr-ecp5): its last line `fmax_mhz: X`
# (--dsp: the products a DSP would take, conv0's and the head's, in MULT18X18D; the others are LUT trees;
# PNR_SEED: nextpnr's placer seed; with the router's timing-driven ripup, seed 3 routed the demo at 162.71 MHz,
# two other seeds at 153.54 and 157.63: README)
PNR_SEED ?= 3
pnr: venv hw-tools $(ECP5_EXPORT)/rtl/top.json
	$(VENV)/bin/hqflow pnr $(ECP5_EXPORT) --dsp --seed $(PNR_SEED)

# the same top behind a UART bridge: co-simulated through a pseudo-terminal (10 test samples), then
# the bitstream for BOARD (rtl/board/$(BOARD)/hqflow.bit); talk to the board with
#   .venv/bin/hqflow board run $(ECP5_EXPORT) --port /dev/ttyUSB0
bitstream: venv hw-tools $(ECP5_EXPORT)/rtl/top.json
	$(VENV)/bin/hqflow board sim $(ECP5_EXPORT) --samples 10 --board $(BOARD)
	$(VENV)/bin/hqflow bitstream $(ECP5_EXPORT) --board $(BOARD)

# Yosys (RTL synthesis, `hqflow synth` and the synthesis tests) is a system package, not a PyPI one:
# installed with apt-get where it is missing and this runs as root with apt (CI); otherwise the way
# to install it is printed and the synthesis tests skip, naming it. Never fails the build.
hw-tools:
	@if [ -n "$$YOSYS" ] || command -v yosys >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "hw-tools: installing yosys with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends yosys \
	    || (apt-get update -qq && apt-get install -y -qq --no-install-recommends yosys) \
	    || echo "hw-tools: apt-get could not install yosys; the synthesis tests will skip"; \
	else \
	  echo "hw-tools: yosys not found: install it (Debian / Ubuntu: sudo apt-get install yosys;" \
	       "other systems: see the README) or set YOSYS=<path>; the synthesis tests skip until then"; \
	fi

test: venv hw-tools
	$(PY) -m pytest

test-slow: venv hw-tools
	$(PY) -m pytest -m slow

# The interoperability checks, each with a Python that has its extra; with the default, .venv's Python,
# each skips and says why:
#   QKeras against hqflow's quantizers (tests/test_qkeras_interop.py; the extra `qkeras`: TensorFlow, about
#   2.4 GB, never in .venv; without tests/conftest.py, which imports torch):
#     make venv-qkeras && make test-interop QKERAS_PYTHON=.venv-qkeras/bin/python
#   NeuroBench's metrics against `hqflow metrics` (tests/test_neurobench_interop.py; the extra `neurobench`):
#     make venv-neurobench && make test-interop NEUROBENCH_PYTHON=.venv-neurobench/bin/python
QKERAS_PYTHON ?= $(PY)
QKERAS_VENV ?= .venv-qkeras
NEUROBENCH_PYTHON ?= $(PY)
NEUROBENCH_VENV ?= .venv-neurobench

test-interop: $(if $(filter $(PY),$(QKERAS_PYTHON) $(NEUROBENCH_PYTHON)),venv)
	@$(QKERAS_PYTHON) -m pytest -n0 --noconftest -p no:cacheprovider -m interop tests/test_qkeras_interop.py; rc=$$?; \
	  if [ $$rc = 5 ]; then echo "test-interop: QKeras skipped (the reason is above)"; elif [ $$rc != 0 ]; then exit $$rc; fi
	@$(NEUROBENCH_PYTHON) -m pytest -n0 -p no:cacheprovider -m interop tests/test_neurobench_interop.py; rc=$$?; \
	  if [ $$rc = 5 ]; then echo "test-interop: NeuroBench skipped (the reason is above)"; else exit $$rc; fi

# .venv's set-up and the extra `neurobench` (NeuroBench and snntorch, whose neurons its hooks import), both
# without their dependency trees (NeuroBench's pins torchaudio, whose build for this torch fails on the CPU)
venv-neurobench: $(NEUROBENCH_VENV)/.installed

$(NEUROBENCH_VENV)/.installed: pyproject.toml
	@test -d $(NEUROBENCH_VENV) || $(PYTHON) -m venv $(NEUROBENCH_VENV)
	$(call install_base,$(NEUROBENCH_VENV))
	$(NEUROBENCH_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-deps $$($(PY) -c "import \
	  tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['neurobench']))")
	@touch $@

# hqflow's NumPy core (no torch: --no-deps), pytest and the extra `qkeras`, in a separate environment
venv-qkeras: $(QKERAS_VENV)/.installed

$(QKERAS_VENV)/.installed: pyproject.toml
	@test -d $(QKERAS_VENV) || $(PYTHON) -m venv $(QKERAS_VENV)
	$(QKERAS_VENV)/bin/python -m pip --disable-pip-version-check -q install numpy pyyaml pytest pytest-xdist \
	  $$($(QKERAS_VENV)/bin/python -c "import tomllib; \
	  print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['qkeras']))")
	$(QKERAS_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	@touch $@

clean:
	rm -rf $(RUNS) $(OUT) .pytest_cache

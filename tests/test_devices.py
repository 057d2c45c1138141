"""The device table, part names and their Yosys family, and the fit of a design on each device."""

from __future__ import annotations

import pytest
import yaml

from hqflow.devices import (
    DEFAULT_CLOCK_MHZ,
    DEFAULT_PART,
    DEFAULT_TABLE,
    check_part_name,
    family_of,
    find_device,
    fit_markdown,
    fit_table,
    load_devices,
)
from hqflow.errors import UserError

# the parts the issue names, and a few figures typed from the vendors' product tables
REQUIRED = ("xc7a100t", "xc7z020", "xc7k325t", "xczu3eg", "xczu7ev", "xcku5p", "xcvu9p")
FIGURES = {  # part: (LUT, FF, DSP, BRAM36)
    "xc7a100t": (63400, 126800, 240, 135),  # DS180
    "xc7z020": (53200, 106400, 220, 140),  # DS190
    "xczu7ev": (230400, 460800, 1728, 312),  # DS891
    "xcvu9p": (1182240, 2364480, 6840, 2160),  # DS890
}


def test_table_loads_and_every_row_has_a_source():
    devices = load_devices()
    parts = [d.part for d in devices]
    assert set(REQUIRED) <= set(parts)
    assert len(parts) == len(set(parts))
    for d in devices:
        assert d.source.strip() and "DS" in d.source, d  # a vendor data sheet by its number
        assert min(d.lut, d.ff, d.dsp, d.bram36) >= 1 and d.uram >= 0
        assert d.family == family_of(d.part)
    by_part = {d.part: d for d in devices}
    for part, figures in FIGURES.items():
        d = by_part[part]
        assert (d.lut, d.ff, d.dsp, d.bram36) == figures, part
    assert by_part["xczu7ev"].uram == 96 and by_part["xc7a100t"].uram == 0


@pytest.mark.parametrize("part, family, row", [
    ("xc7a100tcsg324-1", "xc7", "xc7a100t"),
    ("xc7a35ticsg324-1L", "xc7", "xc7a35t"),
    ("xc7z020clg400-1", "xc7", "xc7z020"),
    ("xc7k325tffg900-2", "xc7", "xc7k325t"),
    ("xcku040-ffva1156-2-e", "xcu", "xcku040"),
    ("xczu3eg-sbva484-1-e", "xcup", "xczu3eg"),
    ("xczu7ev-ffvc1156-2-e", "xcup", "xczu7ev"),
    ("XCZU9EG-FFVB1156-2-E", "xcup", "xczu9eg"),
    ("xcku5p-ffvb676-2-e", "xcup", "xcku5p"),
    ("xcku15p-ffve1517-2-e", "xcup", "xcku15p"),
    ("xcvu9p-flga2104-2-e", "xcup", "xcvu9p"),
])
def test_family_and_row_of_real_part_names(part, family, row):
    assert family_of(part) == family
    assert find_device(part).part == row


@pytest.mark.parametrize("part, family", [
    ("xc7s50csga324-1", "xc7"), ("xc7vx690tffg1761-2", "xc7"), ("xcvu095-ffva2104-2-e", "xcu"),
    ("xcau15p-ffvb676-2-e", "xcup"), ("xck26-sfvc784-2lv-c", "xcup"), ("xcvu13p-fhga2104-2-e", "xcup"),
])
def test_family_of_parts_without_a_row(part, family):
    assert family_of(part) == family
    with pytest.raises(UserError, match=rf"--part '{part}': not in the device table; it holds xc7a35t, "):
        find_device(part)


def test_unknown_parts_name_the_option_and_the_known_ones():
    for part in ("ep4ce22f17c6", "lfe5u-25f", "xc6slx9", "xcvu9"):
        with pytest.raises(UserError) as err:
            family_of(part, "--part")
        message = str(err.value)
        assert message.startswith(f"--part '{part}': not a Xilinx part") and "\n" not in message
        assert "xcup" in message and "xc7a100t" in message and "xczu7ev" in message
    with pytest.raises(UserError, match=r"FPGA part 'xc7;rm': expected a part name such as xc7a100tcsg324-1"):
        check_part_name("xc7;rm")
    with pytest.raises(UserError, match="--part 'xc7a100t cs'"):
        family_of("xc7a100t cs")
    assert check_part_name("xc7a100tcsg324-1") == "xc7a100tcsg324-1"


def test_a_longer_device_name_is_not_a_shorter_row():
    """xc7a1000t (hypothetical) begins with xc7a100t but is not that device."""
    with pytest.raises(UserError, match="not in the device table"):
        find_device("xc7a1000tffg1156-1")


def test_defaults():
    from hqflow.export.hls import HlsOptions

    assert DEFAULT_PART == "xc7a100tcsg324-1" and DEFAULT_CLOCK_MHZ == 100.0
    assert family_of(DEFAULT_PART) == "xc7" and find_device(DEFAULT_PART).name == "Artix-7 100T"
    options = HlsOptions()
    assert options.part == DEFAULT_PART and options.clock_ns == 10.0


def test_fit_math_by_hand():
    """On an Artix-7 100T (63,400 LUT, 126,800 FF, 240 DSP, 135 BRAM36)."""
    a100t = [d for d in load_devices() if d.part == "xc7a100t"]
    design = {"lut": 31700, "ff": 12680, "dsp": 240, "bram": 135.0}
    (row,) = fit_table(design, a100t)
    assert (row["lut_pct"], row["ff_pct"], row["dsp_pct"], row["bram_pct"]) == (50.0, 10.0, 100.0, 100.0)
    assert row["fits"] is True  # exactly full fits
    assert row["capacity"] == {"lut": 63400, "ff": 126800, "dsp": 240, "bram36": 135, "uram": 0}
    (over,) = fit_table(design | {"bram": 135.5}, a100t)  # half a BRAM36 too many
    assert over["fits"] is False and over["limit"] == "BRAM36"
    assert over["bram_pct"] == pytest.approx(100 * 135.5 / 135)
    (dsp,) = fit_table(design | {"dsp": 241}, a100t)
    assert dsp["fits"] is False and dsp["limit"] == "DSP"

    class Res:  # an object with attributes and to_dict, as hqflow.fpga.Resources
        def to_dict(self):
            return design

    assert fit_table(Res(), a100t) == fit_table(design, a100t)
    rows = fit_table(design)
    assert [r["part"] for r in rows] == [d.part for d in load_devices()]
    by_part = {r["part"]: r for r in rows}
    assert by_part["xc7a35t"]["fits"] is False and by_part["xcvu9p"]["fits"] is True
    text = fit_markdown(design | {"bram": 135.5}, a100t)
    assert "| Artix-7 100T (xc7a100t, xc7) | 50.0 % of 63,400 | 10.0 % of 126,800 | 100.0 % of 240 | " \
           "100.4 % of 135 | - | no (BRAM36 100 %) |" in text
    with pytest.raises(ValueError, match="lut"):
        fit_table({"lut": float("nan"), "ff": 0, "dsp": 0, "bram": 0})


def _rows():
    return yaml.safe_load(DEFAULT_TABLE.read_text())


def _with(change):
    def make(doc):
        change(doc)
        return yaml.safe_dump(doc)
    return make


BAD_TABLES = [  # (id, text or doc -> text, what the one-line error must say)
    ("not-mapping", "- 1\n", "a device table is a mapping"),
    ("schema", _with(lambda d: d.update(schema_version=2)), "schema_version: expected 1, got 2"),
    ("no-devices", _with(lambda d: d.update(devices=[])), "devices: expected a non-empty list"),
    ("row-not-mapping", _with(lambda d: d["devices"].__setitem__(0, "xc7a35t")), "devices[0]: expected a mapping"),
    ("no-source", _with(lambda d: d["devices"][1].pop("source")), "devices[1]: lacks key(s) source"),
    ("empty-source", _with(lambda d: d["devices"][1].update(source=" ")), "devices[1].source: expected a non-empty"),
    ("negative-lut", _with(lambda d: d["devices"][1].update(lut=-5)), "devices[1].lut: expected an integer >= 1, got -5"),
    ("text-dsp", _with(lambda d: d["devices"][2].update(dsp="many")), "devices[2].dsp: expected an integer >= 1, got 'many'"),
    ("float-bram", _with(lambda d: d["devices"][2].update(bram36=1.5)), "devices[2].bram36: expected an integer >= 1, got 1.5"),
    ("bool-ff", _with(lambda d: d["devices"][2].update(ff=True)), "devices[2].ff: expected an integer >= 1, got True"),
    ("unknown-key", _with(lambda d: d["devices"][0].update(luts=1)), "devices[0]: unknown key 'luts'"),
    ("bad-family", _with(lambda d: d["devices"][1].update(family="xc9")), "devices[1].family: expected one of xc7, xcu, xcup"),
    ("wrong-family", _with(lambda d: d["devices"][1].update(family="xcup")),
     "devices[1].family: 'xcup' is not the family of part 'xc7a100t' (expected xc7)"),
    ("upper-part", _with(lambda d: d["devices"][1].update(part="XC7A100T")), "devices[1].part: expected a lower-case"),
    ("duplicate", _with(lambda d: d["devices"].append(dict(d["devices"][1]))), "part: 'xc7a100t' appears twice"),
    ("bad-yaml", "devices: [\n", "not valid YAML"),
    ("empty", "", "empty file"),
]


@pytest.mark.parametrize("case", BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_device_table_is_one_line(tmp_path, case):
    _, make, expect = case
    path = tmp_path / "devices.yaml"
    path.write_text(make if isinstance(make, str) else make(_rows()))
    with pytest.raises(UserError) as err:
        load_devices(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert expect in message, message


def test_intact_copy_loads(tmp_path):
    """The control of the cases above: the same file, rewritten unchanged, loads."""
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(_rows()))
    assert load_devices(path) == load_devices()
    with pytest.raises(UserError, match="not found; expected a device table"):
        load_devices(tmp_path / "none.yaml")


def test_ultraram_counts_as_block_ram_where_a_device_has_none():
    from hqflow.devices import URAM_AS_BRAM36, fit_table

    design = {"lut": 1000, "ff": 1000, "dsp": 0, "bram": 10, "uram": 3}
    rows = {r["part"]: r for r in fit_table(design)}
    assert rows["xczu7ev"]["bram_pct"] == 100.0 * 10 / 312 and rows["xczu7ev"]["uram_pct"] == 100.0 * 3 / 96
    assert rows["xc7a100t"]["bram_pct"] == 100.0 * (10 + 3 * URAM_AS_BRAM36) / 135
    assert rows["xc7a100t"]["uram_pct"] == 0.0 and rows["xc7a100t"]["fits"]

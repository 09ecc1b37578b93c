"""INT8 with float islands (``quantize --islands auto``): the choice on injected per-node timings, the
written graph, the report, the mapping of onnxruntime's runtime nodes back to FP32 nodes. No torch,
no timing asserts."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgecnn.contract import Contract, Preprocess, attach
from edgecnn.errors import UsageError
from edgecnn.islands import CONTROL, Attributor, confirm, name_nodes, search, units
from edgecnn.quantize import QuantizeOptions, quantize, runtime_graph
from edgecnn.tables import SHOWN_ISLANDS, islands_lines, quantize_report
from tests.conftest import run_cli

SE = ["/se/pool", "/se/fc1", "/se/relu", "/se/fc2", "/se/gate", "/se/mul"]


def _w(rng, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32))


def tiny_se_net(path):
    """stem conv+ReLU -> squeeze-excite gate -> 1x1 conv+ReLU -> pool -> Gemm: (1, 3, 16, 16) -> (1, 4)."""
    rng = np.random.default_rng(0)
    inits = []
    for name, shape in [("w0", (8, 3, 3, 3)), ("w1", (4, 8, 1, 1)), ("w2", (8, 4, 1, 1)), ("w3", (8, 8, 1, 1)),
                        ("wf", (4, 8))]:
        t = _w(rng, *shape)
        t.name = name
        inits.append(t)
    for name, n in [("b0", 8), ("b1", 4), ("b2", 8), ("b3", 8), ("bf", 4)]:
        inits.append(numpy_helper.from_array(np.full(n, 0.1, np.float32), name))
    N = helper.make_node
    nodes = [N("Conv", ["input", "w0", "b0"], ["s"], name="/stem/conv", pads=[1, 1, 1, 1]),
             N("Relu", ["s"], ["sa"], name="/stem/act"),
             N("GlobalAveragePool", ["sa"], ["p"], name="/se/pool"),
             N("Conv", ["p", "w1", "b1"], ["f1"], name="/se/fc1"),
             N("Relu", ["f1"], ["r1"], name="/se/relu"),
             N("Conv", ["r1", "w2", "b2"], ["f2"], name="/se/fc2"),
             N("Sigmoid", ["f2"], ["g"], name="/se/gate"),
             N("Mul", ["sa", "g"], ["m"], name="/se/mul"),
             N("Conv", ["m", "w3", "b3"], ["c"], name="/body/conv"),
             N("Relu", ["c"], ["ca"], name="/body/act"),
             N("GlobalAveragePool", ["ca"], ["hp"], name="/head/pool"),
             N("Flatten", ["hp"], ["fl"], name="/head/flat", axis=1),
             N("Gemm", ["fl", "wf", "bf"], ["logits"], name="/head/fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny-se", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    attach(model, Contract("classify", "tiny-se", Preprocess.imagenet(16, 3), input_name="input",
                           labels=["a", "b", "c", "d"], weights="random-init", batch=1))
    onnx.save(model, str(path))
    return path


@pytest.fixture
def net(tmp_path):
    return tiny_se_net(tmp_path / "se.onnx")


@pytest.fixture
def calib(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "calib").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "calib" / f"{i}.png")
    return tmp_path / "calib"


def _quantized(model) -> set[str]:
    """For the synthetic graphs of ``test_search_...``: nodes whose first input is dequantized and whose output
    is quantized again."""
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    q = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and n.input and n.input[0] in dq and n.output[0] in q}


def _runtime_int8(model, fp32_model) -> set[str]:
    """The FP32 nodes that onnxruntime runs as integer kernels (QLinear*, *Integer) in the QDQ ``model``."""
    rt = runtime_graph(model.SerializeToString())
    a = Attributor(fp32_model)
    return {a.resolve(n.name) for n in rt.graph.node if n.op_type.startswith("QLinear") or
            n.op_type.endswith("Integer")} - {None}


class FakeTiming:
    """Per-node ms: 1.0 for a node in float; in INT8, ``int8_ms[name]`` (default 0.2). A whole graph costs the
    sum of its nodes. ``which(model)``: the nodes in INT8. Records what it was asked."""

    def __init__(self, int8_ms: dict[str, float], which=None):
        self.int8_ms, self.calls, self.which = int8_ms, [], which

    def per_node(self, model_bytes, fp32_nodes):
        q = self.which(onnx.load_from_string(model_bytes))
        self.calls.append(("per_node", len(q)))
        return {n: (self.int8_ms.get(n, 0.2) if n in q else 1.0) for n in fp32_nodes}

    def end_to_end(self, models):
        self.calls.append(("end_to_end", sorted(models)))
        return {k: sum(self.per_node(b, self._names(b)).values()) for k, b in models.items()}

    def paired(self, models, passes):
        """Every pass the same as ``end_to_end``: a quiet host."""
        self.calls.append(("paired", sorted(models)))
        whole = {k: sum(self.per_node(b, self._names(b)).values()) for k, b in models.items()}
        return [dict(whole) for _ in range(passes)]

    @staticmethod
    def _names(b):
        return {n.name for n in onnx.load_from_string(b).graph.node
                if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}


def test_units_group_conv_activation_and_se_gate(net):
    us = {u.name: u for u in units(onnx.load(net))}
    assert us["/se"].kind == "se" and us["/se"].nodes == SE
    assert us["/stem"].nodes == ["/stem/conv", "/stem/act"] and us["/stem"].kind == "conv"
    assert us["/body"].nodes == ["/body/conv", "/body/act"]
    assert sorted(n for u in us.values() for n in u.nodes) == sorted(n.name for n in onnx.load(net).graph.node)


def test_name_nodes_names_the_unnamed_uniquely(net):
    m = onnx.load(net)
    m.graph.node[1].name = m.graph.node[9].name = ""
    assert name_nodes(m) == 2
    names = [n.name for n in m.graph.node]
    assert len(set(names)) == len(names) and all(names)
    assert name_nodes(m) == 0


def test_slow_se_block_stays_float_fast_blocks_int8(net, calib, tmp_path):
    fp32 = onnx.load(net)
    timing = FakeTiming({n: 3.0 for n in SE}, lambda m: _runtime_int8(m, fp32))  # SE slower in INT8, convs faster
    out = tmp_path / "se.islands.onnx"
    r = quantize(QuantizeOptions(model=str(net), calib=str(calib), out=str(out), bench=False, islands="auto",
                                 timing=timing))
    isl = r.islands
    assert [i["unit"] for i in isl["islands"]] == ["/se"]
    assert isl["kept"] == "islands-1" and isl["pays"]
    written = onnx.load(out)
    q = _runtime_int8(written, fp32)
    assert not q & set(SE)  # float exactly where chosen...
    assert {"/stem/conv", "/body/conv"} <= q  # ...and INT8 elsewhere
    c = json.loads({p.key: p.value for p in written.metadata_props}["edgecnn.contract"])
    assert [i["unit"] for i in c["quantization"]["islands"]["islands"]] == ["/se"]
    lines = quantize_report(r.to_dict())
    assert any(line.startswith("float islands: 1 unit(s)") for line in lines)
    assert any(line.strip().startswith("/se") and "se" in line for line in lines)


def test_nothing_slower_keeps_plain_int8(net, calib, tmp_path):
    fp32 = onnx.load(net)
    timing = FakeTiming({}, lambda m: _runtime_int8(m, fp32))
    r = quantize(QuantizeOptions(model=str(net), calib=str(calib), out=str(tmp_path / "o.onnx"), bench=False,
                                 islands="auto", timing=timing))
    assert r.islands["kept"] == "int8" and r.islands["islands"] == []
    assert set(SE) & _runtime_int8(onnx.load(tmp_path / "o.onnx"), fp32)
    assert "float islands: none kept" in quantize_report(r.to_dict())


def test_search_takes_the_fastest_variant_whole(net):
    """Per node the stem and the SE gate both lose (the stem more). Timed whole with a 10 ms penalty on any
    graph whose SE gate is float (its island's edges), only the stem's island pays; without it, both."""
    m = onnx.load(net)
    build = _marking_build(net)

    class Edges(FakeTiming):
        penalty = 10.0

        def per_node(self, model_bytes, fp32_nodes):
            times = super().per_node(model_bytes, fp32_nodes)
            m = onnx.load_from_string(model_bytes)
            if any(n.op_type == "DequantizeLinear" for n in m.graph.node) and "/se/fc1" not in _quantized(m):
                times[""] = self.penalty  # charged to no node: only the whole graph shows it
            return times

    timing = Edges({**{n: 3.0 for n in SE}, "/stem/conv": 12.0}, _quantized)
    choice, _ = search(m.SerializeToString(), m, build, timing, confirm_passes=0)  # the ranking alone
    assert choice.kept == "islands-1" and [i.unit for i in choice.islands] == ["/stem"]
    assert choice.exclude == ["/stem/conv", "/stem/act"]
    assert ("end_to_end", ["fp32", "int8", "int8-only-1", "int8-only-2", "islands-1", "islands-2"]) in timing.calls
    assert not any(c[0] == "paired" for c in timing.calls)
    choice, _ = search(m.SerializeToString(), m, build, timing)  # re-timed against FP32: no INT8 variant pays
    confirmed = next(c[1] for c in timing.calls if c[0] == "paired")
    assert {"fp32", CONTROL, "islands-1"} <= set(confirmed) and len(confirmed) == 2 + 3  # FP32 twice + the top 3
    assert choice.kept == "fp32" and choice.islands == [] and choice.confirm["best"] == "islands-1"
    timing.penalty = 0.0
    choice, kept = search(m.SerializeToString(), m, build, timing, confirm_passes=0)
    assert choice.kept == "islands-2" and [i.unit for i in choice.islands] == ["/stem", "/se"]
    assert not _quantized(onnx.load_from_string(kept)) & {"/stem/conv", *SE}


def test_attributor_charges_runtime_nodes_to_fp32_nodes(net):
    """onnxruntime's names: fused kernels with _token_N, Q/DQ steps named after their tensor, NCHWc
    reorders without a name of ours (charged to a neighbour)."""
    a = Attributor(onnx.load(net))
    N = helper.make_node
    rt = helper.make_graph([
        N("QuantizeLinear", ["input", "s", "z"], ["input_q"], name="input_QuantizeLinear"),
        N("Transpose", ["input_q"], ["t"], name="Transpose"),
        N("QLinearConv", ["t"], ["sq"], name="/stem/conv_token_3"),
        N("DequantizeLinear", ["sq"], ["f2"], name="f2_DequantizeLinear"),
        N("Conv", ["f2"], ["c_nchwc"], name="c_nchwc"),
    ], "rt", [], [])
    times = {"input_QuantizeLinear": 1.0, "Transpose": 2.0, "/stem/conv_token_3": 4.0, "f2_DequantizeLinear": 8.0,
             "c_nchwc": 16.0, "mystery": 32.0}
    got = a.charge(helper.make_model(rt), times)
    assert got["/stem/conv"] == 1.0 + 2.0 + 4.0  # the input's Q step serves its first consumer
    assert got["/se/fc2"] == 8.0 and got["/body/conv"] == 16.0 and got[""] == 32.0


def test_islands_option_checked(net, calib):
    with pytest.raises(UsageError, match="--islands must be one of off, auto"):
        quantize(QuantizeOptions(model=str(net), calib=str(calib), islands="yes"))


def test_islands_cli_without_torch(net, calib, tmp_path):
    """The real timing source (onnxruntime's profiler on this host), torch blocked: the report and the
    contract say what stayed in float, whatever the host's timings chose."""
    out = tmp_path / "o.onnx"
    r = run_cli("quantize", str(net), "--calib", str(calib), "--samples", "6", "--out", str(out), "--islands", "auto",
                "--threads", "1", "--no-bench", "--format", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    isl = json.loads(r.stdout)["islands"]
    assert set(isl["latency_ms"]) >= {"fp32", "int8"} and isl["kept"] in isl["latency_ms"]
    c = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}["edgecnn.contract"])
    kept = {i["unit"] for i in c["quantization"]["islands"]["islands"]}
    floats = {n.name for n in onnx.load(net).graph.node} - _runtime_int8(onnx.load(out), onnx.load(net))
    for u in units(onnx.load(net)):
        if u.name in kept:
            assert set(u.nodes) <= floats


def test_report_lists_the_islands_that_saved_most_and_counts_the_rest():
    isl = [{"unit": f"/b{i}", "kind": "conv", "ops": "Conv", "fp32_ms": 1.0, "int8_ms": 1.0 + i / 100,
            "saved_ms": i / 100} for i in range(SHOWN_ISLANDS + 3)]
    lines = islands_lines({"kept": "int8-only-2", "islands": isl, "excluded_nodes": 15})
    assert lines[0].startswith(f"float islands: {SHOWN_ISLANDS + 3} unit(s) kept in float (15 nodes, variant "
                               "int8-only-2)")
    shown = [ln.split()[0] for ln in lines[1:-1]]
    assert shown == [f"/b{i}" for i in range(SHOWN_ISLANDS + 2, 2, -1)]  # most saved first; /b0../b2 left out
    assert lines[-1] == "  ... and 3 more (all of them in the contract and --format json)"


def _passes(ms: dict[str, list[float]]) -> list[dict[str, float]]:
    """Per-pass medians from columns: ``{"fp32": [...], CONTROL: [...], "int8": [...]}``."""
    n = len(next(iter(ms.values())))
    return [{k: v[i] for k, v in ms.items()} for i in range(n)]


def test_confirm_keeps_fp32_when_no_variant_clears_the_margin():
    fp32 = [10.0, 10.2, 9.9, 10.1, 10.0]
    runs = _passes({"fp32": fp32, CONTROL: [10.1, 10.0, 10.0, 10.2, 9.9],  # FP32 against itself: within 2%
                    "int8": [9.9, 10.0, 9.8, 10.0, 9.9],  # ~1% faster: inside the noise
                    "islands-1": [9.0, 9.1, 11.0, 9.0, 9.2]})  # 10% faster but slower in one pass
    v = confirm(runs, ["int8", "islands-1"])
    assert v["kept"] == "fp32" and v["margin"] == pytest.approx(0.02)
    assert not v["variants"]["int8"]["pays"] and v["variants"]["int8"]["median"] < 1.02
    isl = v["variants"]["islands-1"]
    assert isl["median"] > 1.05 and isl["low"] < 1.0 and not isl["pays"]
    assert v["best"] == "islands-1"


def test_confirm_margin_is_what_fp32_does_against_itself():
    """A variant 6% faster in every pass pays on a quiet host and not where FP32 strays 8% from itself."""
    fp32 = [10.0] * 5
    quiet = _passes({"fp32": fp32, CONTROL: fp32, "int8": [9.4] * 5})
    assert confirm(quiet, ["int8"])["kept"] == "int8"
    noisy = _passes({"fp32": fp32, CONTROL: [10.0, 10.8, 10.0, 10.0, 10.0], "int8": [9.4] * 5})
    v = confirm(noisy, ["int8"])
    assert v["margin"] == pytest.approx(0.08) and v["kept"] == "fp32"
    assert confirm(quiet, ["int8"], min_margin=0.1)["kept"] == "fp32"  # the floor holds however quiet


def test_confirm_keeps_the_paying_variant_with_the_highest_median():
    runs = _passes({"fp32": [10.0] * 5, CONTROL: [10.0] * 5, "int8": [8.0] * 5, "islands-2": [7.0] * 5,
                    "islands-1": [6.0, 6.0, 6.0, 6.0, 10.5]})  # fastest median, slower than FP32 in one pass
    v = confirm(runs, ["int8", "islands-2", "islands-1"])
    assert v["kept"] == "islands-2" and v["variants"]["int8"]["pays"] and not v["variants"]["islands-1"]["pays"]


class NoisyConfirm(FakeTiming):
    """The search's measures as ``FakeTiming`` (every INT8 variant looks faster), but re-timed against FP32
    the variants run at ``ratio[name]`` x FP32's speed (default: FP32's time)."""

    def __init__(self, int8_ms, which, ratio):
        super().__init__(int8_ms, which)
        self.ratio = ratio

    def paired(self, models, passes):
        self.calls.append(("paired", sorted(models)))
        return [{k: 10.0 / self.ratio.get(k, 1.0) for k in models} for _ in range(passes)]


def test_search_keeps_the_variant_that_holds_not_the_luckiest(net):
    """The search ranks islands-1 (the SE gate in float) first; re-timed against FP32 it is slower, and the
    third-ranked variant, INT8 only in the two units that gain most, clears the margin."""
    m = onnx.load(net)
    timing = NoisyConfirm({n: 3.0 for n in SE}, _quantized, {"int8-only-2": 1.2, "islands-1": 0.95})
    choice, kept = search(m.SerializeToString(), m, _marking_build(net), timing)
    assert min(choice.profiled_ms, key=choice.profiled_ms.get) == "islands-1"
    assert choice.confirm["variants"]["islands-1"]["median"] == pytest.approx(0.95)
    assert choice.kept == "int8-only-2" and len(choice.islands) == len(units(m)) - 2
    assert len(_quantized(onnx.load_from_string(kept))) == 2
    assert choice.to_dict()["speedup_vs_fp32"] == pytest.approx(1.2) and choice.to_dict()["pays"]


def _marking_build(net):
    def build(exclude):
        q = onnx.load(net)
        for n in q.graph.node:  # mark quantized nodes the way the fake reads them: a DequantizeLinear input
            if n.name not in exclude and n.op_type in ("Conv", "Mul", "GlobalAveragePool"):
                q.graph.node.extend([helper.make_node("DequantizeLinear", [n.input[0] + "_q", "s", "z"],
                                                      [n.input[0] + "_dq"]),
                                     helper.make_node("QuantizeLinear", [n.output[0], "s", "z"], [n.output[0] + "_q"])])
                n.input[0] = n.input[0] + "_dq"
        return q.SerializeToString()
    return build


def test_nothing_pays_writes_the_fp32_graph_that_tune_measures(net, calib, tmp_path, home):
    """No INT8 variant beats FP32 when re-timed: the file written is the FP32 graph, its contract and report
    say so, and ``tune`` measures it as the INT8-with-islands precision."""
    from edgecnn.bench import tune as tune_mod

    fp32 = onnx.load(net)
    timing = NoisyConfirm({n: 3.0 for n in SE}, lambda m: _runtime_int8(m, fp32), {"islands-1": 1.01})
    out = tmp_path / "se.int8-islands.onnx"
    r = quantize(QuantizeOptions(model=str(net), calib=str(calib), out=str(out), bench=False, islands="auto",
                                 timing=timing))
    written = onnx.load(out)
    assert not {n.op_type for n in written.graph.node} & {"QuantizeLinear", "DequantizeLinear"}
    assert [n.op_type for n in written.graph.node] == [n.op_type for n in fp32.graph.node]
    c = json.loads({p.key: p.value for p in written.metadata_props}["edgecnn.contract"])
    assert c["precision"] == "fp32" and c["quantization"]["islands"]["kept"] == "fp32"
    assert c["quantization"]["islands"]["pays"] is False and "did not pay" in c["quantization"]["islands"]["verdict"]
    assert r.agreement["top1_agreement"] == 1.0
    lines = quantize_report(r.to_dict())
    assert lines[0].startswith(f"wrote {out} (the FP32 graph") and not any("INT8 gate" in ln for ln in lines)
    assert "float islands: the whole graph (INT8 did not pay on this host: deploy the FP32 file)" in lines
    assert any(ln.split()[:4] == ["islands-1", "9.90", "ms", "median"] and "1.01x" in ln
               and ln.endswith("does not pay") for ln in lines)  # 1% faster: inside the 2% margin
    assert any("INT8 does NOT pay on this host" in ln and "deploy the FP32 file" in ln for ln in lines)
    said: list[str] = []
    result = tune_mod.tune(net, runtimes=["ort"], threads=[1], batches=[1], runs=3, ort_options=False,
                           saved_model=False, precisions=["fp32", "int8-islands"], on_progress=said.append)
    assert {(r["precision"], r["status"]) for r in result.rows} == {("fp32", "ok"), ("int8-islands", "ok")}
    assert any(ln.startswith(f"{out.name} is the FP32 graph") for ln in said)  # tune says its row is FP32 again


def test_confirm_from_seven_passes_one_disturbed_pass_does_not_decide():
    """Another job taking the cores in one pass (FP32's control, or the variant) is set aside; in two it counts."""
    fp32, ctl, fast = [10.0] * 7, [10.0] * 7, [8.0] * 7
    burst = [*ctl[:3], 25.0, *ctl[4:]]
    v = confirm(_passes({"fp32": fp32, CONTROL: burst, "int8": [8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 30.0]}), ["int8"])
    assert v["trim"] == 1 and v["margin"] == pytest.approx(0.02) and v["kept"] == "int8"
    assert v["variants"]["int8"]["low"] == pytest.approx(1.25, rel=1e-3)
    two = [*fast[:5], 30.0, 30.0]  # slower than FP32 in two passes of seven: no longer a 94% bound
    assert confirm(_passes({"fp32": fp32, CONTROL: ctl, "int8": two}), ["int8"])["kept"] == "fp32"
    noisy = [10.0, 10.0, 13.0, 10.0, 13.0, 10.0, 10.0]  # FP32 strays 30% from itself in two passes
    assert confirm(_passes({"fp32": fp32, CONTROL: noisy, "int8": fast}), ["int8"])["kept"] == "fp32"

"""import-qdq on models onnxruntime quantized (QDQ format): the digits CNN quantized by
`quantize_static` compiles to int8 Sparrow programs (no `precision` option: the model is
already quantized) that agree with onnxruntime running the QDQ model; a MatMul / Gemm graph
(rank-3 MatMul, Gemm with transB = 0, a float consumer beside an int8 one) and the CNN
blocks of examples/cnn, quantized the same way, match onnxruntime; biases outside the
accumulator's scale are rescaled."""

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.evaluator import evaluate
from spaq.compiler.pipeline import compile_model

DIGITS = Path(__file__).parents[2] / "examples" / "digits"
SHAPES = {"input": [1, 1, 8, 8]}


class DigitsCalibration(CalibrationDataReader):
    def __init__(self):
        x = np.load(DIGITS / "digits_calib.npz")["x"].astype(np.float32).reshape(-1, 1, 8, 8)
        self.samples = iter([{"input": x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.samples, None)


@pytest.fixture(scope="module")
def qdq_digits(tmp_path_factory) -> Path:
    """digits_cnn.onnx quantized by onnxruntime: int8 weights per channel, symmetric int8
    activations. onnxruntime's pre-processing folds the BatchNormalizations into the convs
    first, as its documentation advises; Softmax stays float (its probabilities would be a
    standalone QuantizeLinear / DequantizeLinear pair, which does not lower to Sparrow yet)."""
    d = tmp_path_factory.mktemp("qdq")
    quant_pre_process(str(DIGITS / "digits_cnn.onnx"), str(d / "pre.onnx"), skip_symbolic_shape=True)  # no sympy in the test extra
    quantize_static(str(d / "pre.onnx"), str(d / "digits_qdq.onnx"), DigitsCalibration(),
                    quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8, nodes_to_exclude=["softmax"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return d / "digits_qdq.onnx"


@cache
def digits_test_split():
    d = np.load(DIGITS / "digits_test.npz")
    return d["x"], d["y"]


@cache
def _compiled(model: Path, target: str, stop_before: str | None = None):
    return compile_model(model, target, shapes=SHAPES, stop_before=stop_before)


def test_qdq_digits_import_as_int8_layers(qdq_digits):
    module = str(_compiled(qdq_digits, "edge", "onnx-canonicalize").module)
    assert module.count("quant.conv") == 2 and module.count("quant.gemm") == 2
    assert module.count("quant.requantize") == 3 and module.count("quant.dequantize") == 1
    for gone in ("onnx.QuantizeLinear", "onnx.DequantizeLinear", "onnx.Conv", "onnx.Gemm"):
        assert gone not in module


@pytest.mark.parametrize("target", ["edge", "datacenter"])
def test_qdq_digits_run_int8_on_sparrow_and_agree_with_onnxruntime(qdq_digits, target):
    c = _compiled(qdq_digits, target)
    ref = _compiled(qdq_digits, target, "tile-layers")
    gemms = [i for i in c.program if i.mnemonic in ("gemm", "spgemm")]
    assert len(gemms) == 4
    assert all(str(i).startswith(f"{i.mnemonic} adtype=i8 wdtype=i8") for i in gemms), gemms
    x, y = digits_test_split()
    sim = []
    for i in range(len(x)):
        probs = simulate(c.program, c.image, c.target, {"input": x[i : i + 1]}).outputs["probs"]
        if i % 15 == 0:
            assert np.array_equal(probs, evaluate(ref.module, ref.ctx, {"input": x[i : i + 1]})["probs"]), f"image {i}"
        sim.append(probs)
    sim = np.concatenate(sim)
    want = ort.InferenceSession(str(qdq_digits), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    agree = (sim.argmax(1) == want.argmax(1)).mean()
    acc_spaq, acc_ort = (sim.argmax(1) == y).mean(), (want.argmax(1) == y).mean()
    print(f"{target}: argmax agreement {agree:.4f}, accuracy spaq {acc_spaq:.4f} onnxruntime {acc_ort:.4f}")
    assert agree >= 0.99
    assert abs(acc_spaq - acc_ort) <= 0.01


# ------------------------------------------------------------------ a MatMul / Gemm graph, quantized

class RandomCalibration(CalibrationDataReader):
    def __init__(self, shape, count=16):
        rng = np.random.default_rng(2)
        self.samples = iter([{"input": rng.normal(0, 1, shape).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.samples, None)


def _matmul_gemm_model(tmp: Path, with_add: bool) -> Path:
    """x[2, 3, 8] → MatMul(W1[8, 16]) → Relu → Reshape [6, 16] → Gemm(W2[16, 4], transB = 0,
    bias) → Relu, quantized by onnxruntime (per-channel int8 weights, symmetric int8
    activations); `with_add`: the Relu output is also a graph output through a float Add, so
    the MatMul is dequantized and the Gemm quantizes its input again."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (8, 16)).astype(np.float32), "w1"),
             numpy_helper.from_array(np.array([6, 16], np.int64), "shape"),
             numpy_helper.from_array(rng.normal(0, 0.5, (16, 4)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.5, 4).astype(np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["mm"], name="mm"),
             helper.make_node("Relu", ["mm"], ["relu1"], name="relu1"),
             helper.make_node("Reshape", ["relu1", "shape"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "w2", "b2"], ["fc"], name="fc", transB=0),
             helper.make_node("Relu", ["fc"], ["out"], name="relu2")]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [6, 4])]
    if with_add:
        nodes.append(helper.make_node("Add", ["relu1", "relu1"], ["twice"], name="twice"))
        outputs.append(helper.make_tensor_value_info("twice", TensorProto.FLOAT, [2, 3, 16]))
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 8])],
                              outputs, inits)
    float_model = tmp / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), float_model)
    path = tmp / "qdq.onnx"
    quantize_static(str(float_model), str(path), RandomCalibration((2, 3, 8)), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    nodes_to_exclude=["twice"],  # a float Add: no standalone Q / DQ after it
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return path


@pytest.mark.parametrize("with_add", [False, True])
def test_quantized_matmul_and_gemm_match_onnxruntime(tmp_path, with_add):
    path = _matmul_gemm_model(tmp_path, with_add)
    c = compile_model(path, "edge", stop_before="onnx-canonicalize")
    ir = str(c.module)
    assert ir.count("quant.gemm") == 2 and "onnx.MatMul" not in ir and "onnx.Gemm" not in ir
    assert ir.count("quant.requantize") == (0 if with_add else 1)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 8)).astype(np.float32)
    names = ["out", "twice"] if with_add else ["out"]
    want = dict(zip(names, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(names, {"input": x})))
    got = evaluate(c.module, c.ctx, {"input": x})
    scale = {i.name: float(numpy_helper.to_array(i)) for i in onnx.load(path).graph.initializer
             if i.name in ("out_scale", "relu1_scale")}
    # onnxruntime rounds the output to its int8 grid, spaq dequantizes the accumulator (as the
    # quantize pass does): at most half a step, plus a step from the one-step-apart integers
    # that fixed-point and float requantization can give the Gemm's input
    assert np.abs(got["out"] - want["out"]).max() <= 1.5 * scale["out_scale"]
    if with_add:  # 2 · Relu, before its rounding to relu1's grid
        assert np.abs(got["twice"] - want["twice"]).max() <= scale["relu1_scale"] * 1.001
    # and on Sparrow: the whole pipeline, bit-exact with the evaluator
    full = compile_model(path, "edge")
    ref = compile_model(path, "edge", stop_before="tile-layers")
    sim = simulate(full.program, full.image, full.target, {"input": x}).outputs
    want_ref = evaluate(ref.module, ref.ctx, {"input": x})
    for name in names:
        assert np.array_equal(sim[name], want_ref[name]), name


@pytest.mark.parametrize("bias", ["float", "int32 in another scale"])
def test_bias_not_in_the_accumulator_scale_is_rescaled(tmp_path, bias):
    """A float bias, or an int32 one whose scale is not s_x·s_w, becomes i32 in s_x·s_w;
    per-tensor weights, Gemm with transB = 0."""
    rng = np.random.default_rng(3)
    s_x, s_w, s_y = np.float32(0.05), np.float32(0.01), np.float32(0.1)
    w = rng.integers(-127, 128, (8, 4)).astype(np.int8)  # [K, N]
    b = rng.normal(0, 1, 4).astype(np.float32)
    z8 = np.int8(0)
    inits = [numpy_helper.from_array(np.asarray(a), n) for a, n in
             ((s_x, "sx"), (z8, "z"), (w, "wq"), (s_w, "sw"), (s_y, "sy"))]
    nodes = [helper.make_node("QuantizeLinear", ["input", "sx", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "z"], ["wd"])]
    if bias == "float":
        inits.append(numpy_helper.from_array(b, "b"))
    else:  # int32 in a scale 3x the accumulator's
        s_b = np.float32(3 * s_x * s_w)
        inits += [numpy_helper.from_array(np.round(b / s_b).astype(np.int32), "bq"),
                  numpy_helper.from_array(s_b, "sb"), numpy_helper.from_array(np.int32(0), "zb")]
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["b"]))
    nodes += [helper.make_node("Gemm", ["xd", "wd", "b"], ["y"], name="fc"),
              helper.make_node("QuantizeLinear", ["y", "sy", "z"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "sy", "z"], ["out"])]
    graph = helper.make_graph(nodes, "fc", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [3, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3, 4])], inits)
    path = tmp_path / "fc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    c = compile_model(path, "edge", stop_before="onnx-canonicalize")
    assert "quant.gemm" in str(c.module) and "onnx.Gemm" not in str(c.module)
    x = rng.normal(0, 1.5, (3, 8)).astype(np.float32)
    # onnxruntime without graph optimizations: its QDQ fusion takes an int32 bias as if its
    # scale were s_x·s_w (0.6 off here), ONNX's DequantizeLinear does not
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = evaluate(c.module, c.ctx, {"input": x})["out"]
    # onnxruntime rounds the output to s_y, spaq dequantizes the accumulator; the rescaled
    # bias is within half an accumulator step of the model's
    assert np.abs(got - want).max() <= s_y / 2 + s_x * s_w


CNN = Path(__file__).parents[2] / "examples" / "cnn"


@pytest.mark.parametrize("model, convs", [("resnet_basic.onnx", 3), ("mobilenet_ir.onnx", 5), ("inception_a.onnx", 7)])
def test_quantized_cnn_blocks_match_onnxruntime(tmp_path, model, convs):
    """The CNN blocks (residual Add, depthwise convs and squeeze-excite, Inception's
    concatenated branches) quantized by onnxruntime: every conv becomes quant.conv; the
    Q / DQ pairs around the float ops between (Add, Mul, Concat, pools) stay, and the
    evaluator agrees with onnxruntime to within one step of the output's scale."""
    src = onnx.load(CNN / model)
    shape = [d.dim_value for d in src.graph.input[0].type.tensor_type.shape.dim]
    path = tmp_path / "qdq.onnx"
    quantize_static(str(CNN / model), str(path), RandomCalibration(shape, 8), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    c = compile_model(path, "edge", stop_before="onnx-canonicalize")
    ir = str(c.module)
    assert ir.count("quant.conv ") == convs and "onnx.Conv(" not in ir
    x = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = evaluate(c.module, c.ctx, {"input": x})["output"]
    s_out = float(numpy_helper.to_array(next(i for i in onnx.load(path).graph.initializer if i.name == "output_scale")))
    diff = np.abs(got - want) / s_out  # in steps of the output's grid (both outputs are on it)
    assert diff.max() <= 1.001 and diff.mean() <= 0.25

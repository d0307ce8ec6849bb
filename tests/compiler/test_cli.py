"""The drivers: outputs on success, one clear line and exit 1 on bad input."""

from pathlib import Path

import numpy as np
import pytest

from spaq.compiler import spaq_main, spaq_opt

DIGITS = Path(__file__).parents[2] / "examples" / "digits"
MODEL = str(DIGITS / "digits_cnn.onnx")


def test_compile_and_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert spaq_main.main(["compile", MODEL, "--target", "edge", "-o", str(out), "--precision", "int8",
                           "--calibration", str(DIGITS / "digits_calib.npz"), "--shape", "input=1x1x8x8"]) == 0
    for f in ("program.s", "program.bin", "image.bin", "layout.json", "report.json"):
        assert (out / f).exists(), f
    x = np.load(DIGITS / "digits_test.npz")["x"][:1]
    np.save(tmp_path / "x.npy", x)
    assert spaq_main.main(["run", str(out), "--input", str(tmp_path / "x.npy")]) == 0
    probs = np.load(out / "outputs.npz")["probs"]
    assert probs.shape == (1, 10) and abs(probs.sum() - 1) < 1e-5


@pytest.mark.parametrize("args, message", [
    (["compile", "missing.onnx"], "missing.onnx: no such file"),
    (["compile", __file__, "--shape", "input=1x1x8x8"], "not an ONNX model"),
    (["compile", MODEL], "input 'input' has symbolic dimension 0 ('N')"),
    (["compile", MODEL, "--shape", "input=1x1x8x8", "--target", "moon"], "unknown target 'moon'"),
    (["compile", MODEL, "--shape", "input=1x1x8x8", "--sparsity", "4:2"], "sparsity '4:2'"),
    (["compile", MODEL, "--shape", "input=1x1x8x8", "--precision", "int8"], "calibration"),
    (["run", "nowhere"], "no program.bin"),
])
def test_bad_input_is_one_line_and_exit_1(args, message, capsys, tmp_path):
    assert spaq_main.main([*args, "-o", str(tmp_path / "o")] if args[0] == "compile" else args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unsupported_operator_names_the_node(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"], name="weird")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    path = tmp_path / "celu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert spaq_main.main(["compile", str(path), "-o", str(tmp_path / "o")]) == 1
    assert "node 'weird' (Det): operator Det is not supported" in capsys.readouterr().err


def test_spaq_opt_reads_onnx_and_prints_ir_after_every_pass(capsys):
    assert spaq_opt.main([MODEL, "--shape", "input=1x1x8x8", "-p", "onnx-canonicalize,choose-compression",
                          "--print-ir-after-all"]) == 0
    captured = capsys.readouterr()
    assert "// -----// IR after onnx-canonicalize //----- //" in captured.err
    assert "// -----// IR after choose-compression //----- //" in captured.err
    assert "onnx.BatchNormalization" not in captured.out and "conv1.weight.bnfold" in captured.out

// Each chunk of --split-input-file is its own compilation with its own WeightStore: a
// weight derived in one chunk ("w.nk") is not visible in the next.
// RUN: not spaq-opt %s --split-input-file -p 'onnx-canonicalize,quantize{calibration="%inputs/calib_1x2.npz"}' 2>&1 | filecheck %s

func.func @main(%x: tensor<1x2xf32>) -> tensor<1x3xf32> {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x3xf32> : tensor<2x3xf32>
  %y = onnx.Gemm(%x, %w) : (tensor<1x2xf32>, tensor<2x3xf32>) -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}
// CHECK: onnx.Initializer "w.nk" : tensor<3x2xf32>

// -----

func.func @main(%x: tensor<1x2xf32>) -> tensor<1x3xf32> {
  %w = onnx.Initializer "w.nk" : tensor<3x2xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x2xf32>, tensor<3x2xf32>) -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}
// CHECK: spaq-opt: error: weight 'w.nk' is not in the weight store

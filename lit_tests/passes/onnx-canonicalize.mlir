// RUN: spaq-opt %s --split-input-file -p onnx-canonicalize | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++} i<=2' %s | spaq-opt --split-input-file -p 'onnx-canonicalize,choose-compression{precision=int8},quantize{calibration="%inputs/calib_1x16.npz"}' | filecheck %s --check-prefix=NUM
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'onnx-canonicalize,choose-compression{precision=int8},quantize{calibration="%inputs/calib_1x2.npz"}' | filecheck %s --check-prefix=NUM3
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | spaq-opt -p 'onnx-canonicalize,choose-compression{precision=int8},quantize{calibration="%inputs/calib_1x8.npz"}' | filecheck %s --check-prefix=NUM4

// The splits share one WeightStore, so each uses its own weight names.
// Printing IR never prints weights, so the values of the weights the pass derives are
// checked through quantize (the NUM runs, each with calibration samples of its input's size): the per-channel weight scale is max|W[c]| / 127.

// BatchNormalization after a Conv with constant weights folds into it, as new weights
// `<w>.bnfold` / `<b>.bnfold`; the Identity after it disappears, and so do the old weights.
// s = gamma / sqrt(var + eps) = [2 / 1, 0.5 / 2] = [2, 0.25], so W' = W * s = [2, 0.5].
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[W:[^ ]+]] = onnx.Initializer "conv1.weight.bnfold" : tensor<2x1x1x1xf32>
// CHECK-NEXT:  %[[B:[^ ]+]] = onnx.Initializer "conv1.bias.bnfold" : tensor<2xf32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = onnx.Conv(%x, %[[W]], %[[B]]) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} : (tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:  func.return %[[Y]] : tensor<1x2x4x4xf32>
// CHECK-NOT:   BatchNormalization
// CHECK-NOT:   Identity
// CHECK:       // {{-----}}
// NUM:       quant.quantize %{{[^ ]+}} {scale = array<f32: 0.0157480314, 0.00393700786>, axis = 0 : i64} : tensor<2x1x1x1xf32>
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x2x4x4xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "conv1.weight" = dense<[[[[1.0]]], [[[2.0]]]]> : tensor<2x1x1x1xf32> : tensor<2x1x1x1xf32>
  %b = onnx.Initializer "conv1.bias" = dense<[1.0, -1.0]> : tensor<2xf32> : tensor<2xf32>
  %c = onnx.Conv(%x, %w, %b) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} : (tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %g = onnx.Initializer "bn1.weight" = dense<[2.0, 0.5]> : tensor<2xf32> : tensor<2xf32>
  %be = onnx.Initializer "bn1.bias" = dense<[0.0, 1.0]> : tensor<2xf32> : tensor<2xf32>
  %mu = onnx.Initializer "bn1.running_mean" = dense<[1.0, 0.0]> : tensor<2xf32> : tensor<2xf32>
  %var = onnx.Initializer "bn1.running_var" = dense<[1.0, 4.0]> : tensor<2xf32> : tensor<2xf32>
  %bn = onnx.BatchNormalization(%c, %g, %be, %mu, %var) {epsilon = 0.0 : f32, onnx.node = "bn1"} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %id = onnx.Identity(%bn) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %id : tensor<1x2x4x4xf32>
}

// -----

// A Conv without a bias gets one from the fold, named after the weight.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[W:[^ ]+]] = onnx.Initializer "conv2.weight.bnfold" : tensor<2x1x1x1xf32>
// CHECK-NEXT:  %[[B:[^ ]+]] = onnx.Initializer "conv2.bias.bnfold" : tensor<2xf32>
// CHECK-NEXT:  onnx.Conv(%x, %[[W]], %[[B]])
// CHECK-NEXT:  func.return
// CHECK:       // {{-----}}
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x2x4x4xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "conv2.weight" = dense<[[[[1.0]]], [[[2.0]]]]> : tensor<2x1x1x1xf32> : tensor<2x1x1x1xf32>
  %c = onnx.Conv(%x, %w) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv2"} : (tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %g = onnx.Initializer "bn2.weight" = dense<[2.0, 0.5]> : tensor<2xf32> : tensor<2xf32>
  %be = onnx.Initializer "bn2.bias" = dense<[0.0, 1.0]> : tensor<2xf32> : tensor<2xf32>
  %mu = onnx.Initializer "bn2.running_mean" = dense<[1.0, 0.0]> : tensor<2xf32> : tensor<2xf32>
  %var = onnx.Initializer "bn2.running_var" = dense<[1.0, 4.0]> : tensor<2xf32> : tensor<2xf32>
  %bn = onnx.BatchNormalization(%c, %g, %be, %mu, %var) {epsilon = 0.0 : f32, onnx.node = "bn2"} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %bn : tensor<1x2x4x4xf32>
}

// -----

// The Conv's result has a second use: nothing is folded into the Conv; the BatchNormalization
// becomes x · a + b with per-channel constants (canonical_forms.py).
// CHECK-LABEL: func.func @main
// CHECK-NOT:   bnfold
// CHECK:       %[[C:[^ ]+]] = onnx.Conv(%x, %w)
// CHECK:       %[[M:[^ ]+]] = onnx.Mul(%[[C]], %{{.*}}) : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>)
// CHECK:       %[[BN:[^ ]+]] = onnx.Add(%[[M]], %{{.*}})
// CHECK-NEXT:  func.return %[[BN]], %[[C]]
// CHECK:       // {{-----}}
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x2x4x4xf32> {onnx.name = "out"}, tensor<1x2x4x4xf32> {onnx.name = "conv"}) {
  %w = onnx.Initializer "conv3.weight" = dense<[[[[1.0]]], [[[2.0]]]]> : tensor<2x1x1x1xf32> : tensor<2x1x1x1xf32>
  %c = onnx.Conv(%x, %w) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv3"} : (tensor<1x1x4x4xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x4x4xf32>
  %g = onnx.Initializer "bn3.weight" = dense<[2.0, 0.5]> : tensor<2xf32> : tensor<2xf32>
  %be = onnx.Initializer "bn3.bias" = dense<[0.0, 1.0]> : tensor<2xf32> : tensor<2xf32>
  %mu = onnx.Initializer "bn3.running_mean" = dense<[1.0, 0.0]> : tensor<2xf32> : tensor<2xf32>
  %var = onnx.Initializer "bn3.running_var" = dense<[1.0, 4.0]> : tensor<2xf32> : tensor<2xf32>
  %bn = onnx.BatchNormalization(%c, %g, %be, %mu, %var) {epsilon = 0.0 : f32, onnx.node = "bn3"} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  func.return %bn, %c : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
}

// -----

// Gemm with transB = 0, alpha and beta: W is stored transposed to [N, K] and scaled by alpha
// (`.nk`), C is scaled by beta (`.scaled`), and the attributes say so. Dropout disappears.
// W^T * alpha = [[2, 8], [4, 10], [6, 12]]: row maxima 8, 10, 12.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[W:[^ ]+]] = onnx.Initializer "fc.weight.nk" : tensor<3x2xf32>
// CHECK-NEXT:  %[[C:[^ ]+]] = onnx.Initializer "fc.bias.scaled" : tensor<3xf32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = onnx.Gemm(%x, %[[W]], %[[C]])
// CHECK-SAME:    alpha = 1.000000e+00 : f32, beta = 1.000000e+00 : f32, onnx.node = "fc", transB = 1 : i64
// CHECK-SAME:    : (tensor<1x2xf32>, tensor<3x2xf32>, tensor<3xf32>) -> tensor<1x3xf32>
// CHECK-NEXT:  func.return %[[Y]]
// CHECK-NOT:   Dropout
// CHECK:       // {{-----}}
// NUM3:      quant.quantize %{{[^ ]+}} {scale = array<f32: 0.0629921257, 0.0787401572, 0.0944881886>, axis = 0 : i64} : tensor<3x2xf32>
func.func @main(%x: tensor<1x2xf32> {onnx.name = "input"}) -> (tensor<1x3xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc.weight" = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32> : tensor<2x3xf32>
  %b = onnx.Initializer "fc.bias" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32> : tensor<3xf32>
  %d = onnx.Dropout(%x) : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %y = onnx.Gemm(%d, %w, %b) {alpha = 2.0 : f32, beta = 0.5 : f32, onnx.node = "fc"} : (tensor<1x2xf32>, tensor<2x3xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}

// -----

// Constant folding: an op whose inputs are all constants becomes an initializer
// (`<result>.folded`). W = a + b = [[1, 0, ..., 0.5], [0, -3, 0, ...]]: row maxima 1 and 3.
// A Gemm already in normal form is left alone (no `.nk`), the omitted C stays omitted.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[W:[^ ]+]] = onnx.Initializer "w.folded" : tensor<2x8xf32>
// CHECK-NEXT:  %[[N:[^ ]+]] = onnx.NoValue : none
// CHECK-NEXT:  onnx.Gemm(%x, %[[W]], %[[N]]) {transB = 1 : i64, onnx.node = "fc"}
// CHECK-NEXT:  func.return
// CHECK-NOT:   onnx.Add
// NUM4:      quant.quantize %{{[^ ]+}} {scale = array<f32: 0.00787401572, 0.0236220472>, axis = 0 : i64} : tensor<2x8xf32>
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %a = onnx.Initializer "a" = dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %b = onnx.Initializer "b" = dense<[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %w = onnx.Add(%a, %b) : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  %none = onnx.NoValue : none
  %y = onnx.Gemm(%x, %w, %none) {transB = 1 : i64, onnx.node = "fc"} : (tensor<1x8xf32>, tensor<2x8xf32>, none) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// GELU written out (the torch exporters' x·0.5·(1 + erf(x/√2)), in its three orders)
// becomes onnx.Gelu: one `vun gelu` on Sparrow. The chain's ops disappear.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[A:[^ ]+]] = onnx.Gelu(%x) {onnx.node = "gelu1"} : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:  %[[B:[^ ]+]] = onnx.Gelu(%[[A]]) {onnx.node = "gelu2"} : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:  %[[C:[^ ]+]] = onnx.Gelu(%[[B]]) {onnx.node = "gelu3"} : (tensor<2x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:  func.return %[[C]]
func.func @main(%x: tensor<2x4xf32> {onnx.name = "input"}) -> (tensor<2x4xf32> {onnx.name = "out"}) {
  %sqrt2 = onnx.Initializer "sqrt2" = dense<1.41421354> : tensor<f32> : tensor<f32>
  %one = onnx.Initializer "one" = dense<1.0> : tensor<f32> : tensor<f32>
  %half = onnx.Initializer "half" = dense<0.5> : tensor<f32> : tensor<f32>
  %d = onnx.Div(%x, %sqrt2) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %e = onnx.Erf(%d) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %a = onnx.Add(%e, %one) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %m = onnx.Mul(%x, %a) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %y = onnx.Mul(%m, %half) {onnx.node = "gelu1"} : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %d2 = onnx.Div(%y, %sqrt2) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %e2 = onnx.Erf(%d2) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %a2 = onnx.Add(%one, %e2) : (tensor<f32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %h2 = onnx.Mul(%half, %a2) : (tensor<f32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %y2 = onnx.Mul(%y, %h2) {onnx.node = "gelu2"} : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  %d3 = onnx.Div(%y2, %sqrt2) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %e3 = onnx.Erf(%d3) : (tensor<2x4xf32>) -> tensor<2x4xf32>
  %a3 = onnx.Add(%e3, %one) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %x3 = onnx.Mul(%y2, %half) : (tensor<2x4xf32>, tensor<f32>) -> tensor<2x4xf32>
  %y3 = onnx.Mul(%x3, %a3) {onnx.node = "gelu3"} : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  func.return %y3 : tensor<2x4xf32>
}

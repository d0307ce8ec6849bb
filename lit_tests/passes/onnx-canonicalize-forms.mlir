// onnx-canonicalize's forms for Sparrow (passes/canonical_forms.py, CastLikeToCast).
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=MM
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=EIN
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=EMPTY
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=CAST
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=BN
// RUN: awk '/^\/\/ -----$/{i++; next} i==5' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=LRN
// RUN: awk '/^\/\/ -----$/{i++; next} i==6' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=CT
// RUN: awk '/^\/\/ -----$/{i++; next} i==7' %s | spaq-opt -p onnx-canonicalize | filecheck %s --check-prefix=CT1

// MatMul with a 1-D operand: a [1, K] row, MatMul, the result reshaped (free views).
// MM: onnx.Reshape(%a, %{{.*}}) : (tensor<4xf32>, tensor<2xi64>) -> tensor<1x4xf32>
// MM-NEXT: onnx.MatMul({{.*}}) : (tensor<1x4xf32>, tensor<2x4x3xf32>) -> tensor<2x1x3xf32>
// MM: onnx.Reshape({{.*}}) : (tensor<2x1x3xf32>, tensor<2xi64>) -> tensor<2x3xf32>
func.func @main(%a: tensor<4xf32> {onnx.name = "a"}, %b: tensor<2x4x3xf32> {onnx.name = "b"}) -> (tensor<2x3xf32> {onnx.name = "c"}) {
  %c = onnx.MatMul(%a, %b) {onnx.node = "mm1"} : (tensor<4xf32>, tensor<2x4x3xf32>) -> tensor<2x3xf32>
  func.return %c : tensor<2x3xf32>
}

// -----

// Einsum: a batched matmul is MatMul, a sum over a letter is ReduceSum.
// EIN: %z = onnx.MatMul(%x, %y) : (tensor<5x2x3xf32>, tensor<5x3x4xf32>) -> tensor<5x2x4xf32>
// EIN: onnx.ReduceSum(%s, %{{.*}}) {keepdims = 0 : i64} : (tensor<3x4xf32>, tensor<1xi64>) -> tensor<3xf32>
// EIN-NOT: onnx.Einsum
func.func @main(%x: tensor<5x2x3xf32> {onnx.name = "x"}, %y: tensor<5x3x4xf32> {onnx.name = "y"}, %s: tensor<3x4xf32> {onnx.name = "s"}) -> (tensor<5x2x4xf32> {onnx.name = "z"}, tensor<3xf32> {onnx.name = "t"}) {
  %z = onnx.Einsum(%x, %y) {equation = "bij, bjk -> bik", onnx.node = "e1"} : (tensor<5x2x3xf32>, tensor<5x3x4xf32>) -> tensor<5x2x4xf32>
  %t = onnx.Einsum(%s) {equation = "ij->i", onnx.node = "e2"} : (tensor<3x4xf32>) -> tensor<3xf32>
  func.return %z, %t : tensor<5x2x4xf32>, tensor<3xf32>
}

// -----

// A reduction of an empty graph input is a constant.
// EMPTY: %y.folded = onnx.Initializer "y.folded" : tensor<2x1x4xf32>
// EMPTY-NEXT: func.return %y.folded
func.func @main(%x: tensor<2x0x4xf32> {onnx.name = "x"}) -> (tensor<2x1x4xf32> {onnx.name = "y"}) {
  %axes = onnx.Initializer "axes" = dense<[1]> : tensor<1xi64> : tensor<1xi64>
  %y = onnx.ReduceProd(%x, %axes) {keepdims = 1 : i64, onnx.node = "p1"} : (tensor<2x0x4xf32>, tensor<1xi64>) -> tensor<2x1x4xf32>
  func.return %y : tensor<2x1x4xf32>
}

// -----

// CastLike is a Cast to the other operand's element type.
// CAST: onnx.Cast(%x) {onnx.node = "cl1", to = 16 : i64} : (tensor<3x4xf32>) -> tensor<3x4xbf16>
func.func @main(%x: tensor<3x4xf32> {onnx.name = "x"}) -> (tensor<3x4xbf16> {onnx.name = "y"}) {
  %like = onnx.Initializer "like" = dense<1.0> : tensor<1xbf16> : tensor<1xbf16>
  %y = onnx.CastLike(%x, %like) {onnx.node = "cl1"} : (tensor<3x4xf32>, tensor<1xbf16>) -> tensor<3x4xbf16>
  func.return %y : tensor<3x4xbf16>
}

// -----

// BatchNormalization with run-time statistics: a = γ / √(σ² + ε), b = β − μ · a on the [C]
// vectors, then x · a + b with a and b seen as [C, 1, 1] (Reshape views).
// BN: onnx.Add(%v, %batchnorm.eps)
// BN-NEXT: onnx.Sqrt
// BN-NEXT: onnx.Div(%s,
// BN: onnx.Reshape({{.*}}) : (tensor<3xf32>, tensor<3xi64>) -> tensor<3x1x1xf32>
// BN-NEXT: onnx.Mul(%x, {{.*}}) : (tensor<2x3x4x5xf32>, tensor<3x1x1xf32>) -> tensor<2x3x4x5xf32>
// BN-NOT: onnx.BatchNormalization
func.func @main(%x: tensor<2x3x4x5xf32> {onnx.name = "x"}, %s: tensor<3xf32> {onnx.name = "s"}, %b: tensor<3xf32> {onnx.name = "b"}, %m: tensor<3xf32> {onnx.name = "m"}, %v: tensor<3xf32> {onnx.name = "v"}) -> (tensor<2x3x4x5xf32> {onnx.name = "y"}) {
  %y = onnx.BatchNormalization(%x, %s, %b, %m, %v) {epsilon = 1.0e-05 : f32, onnx.node = "bn1"} : (tensor<2x3x4x5xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<2x3x4x5xf32>
  func.return %y : tensor<2x3x4x5xf32>
}

// -----

// Local response normalization: the channel window's sum of squares is a 1x1 Conv by a banded constant, then a VBIN pow.
// LRN: %{{.*}} = onnx.Mul(%x, %x)
// LRN-NEXT: onnx.Conv(%{{.*}}, %lrn.window) {kernel_shape = array<i64: 1, 1>}
// LRN: onnx.Pow
// LRN-NEXT: onnx.Mul(%x,
// LRN-NOT: onnx.LRN
func.func @main(%x: tensor<1x5x2x2xf32> {onnx.name = "x"}) -> (tensor<1x5x2x2xf32> {onnx.name = "y"}) {
  %y = onnx.LRN(%x) {size = 3 : i64, alpha = 2.0e-04 : f32, onnx.node = "lrn1"} : (tensor<1x5x2x2xf32>) -> tensor<1x5x2x2xf32>
  func.return %y : tensor<1x5x2x2xf32>
}

// -----

// ConvTranspose, stride 2: zeros inserted by a Pad of unit axes between two Reshapes, then a
// stride-1 Conv by the flipped weight padded d·(k − 1) − pad before, the rest after.
// CT: onnx.Reshape(%x, %{{.*}}) : (tensor<1x1x3x3xf32>, tensor<4xi64>) -> tensor<3x1x3x1xf32>
// CT: onnx.Pad(%{{.*}}, %convtranspose.pads) : (tensor<3x1x3x1xf32>, tensor<8xi64>) -> tensor<3x2x3x2xf32>
// CT: onnx.Reshape({{.*}}) : (tensor<3x2x3x2xf32>, tensor<4xi64>) -> tensor<1x1x6x6xf32>
// CT: onnx.Conv(%{{.*}}, %w.convtranspose, %b) {onnx.node = "ct1", kernel_shape = array<i64: 3, 3>, dilations = array<i64: 1, 1>, group = 1 : i64, strides = array<i64: 1, 1>, pads = array<i64: 2, 2, 1, 1>} : (tensor<1x1x6x6xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x7x7xf32>
// CT-NOT: onnx.ConvTranspose
func.func @main(%x: tensor<1x1x3x3xf32> {onnx.name = "x"}) -> (tensor<1x2x7x7xf32> {onnx.name = "y"}) {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<1x2x3x3xf32> : tensor<1x2x3x3xf32>
  %b = onnx.Initializer "b" = dense<0.5> : tensor<2xf32> : tensor<2xf32>
  %y = onnx.ConvTranspose(%x, %w, %b) {strides = array<i64: 2, 2>, onnx.node = "ct1"} : (tensor<1x1x3x3xf32>, tensor<1x2x3x3xf32>, tensor<2xf32>) -> tensor<1x2x7x7xf32>
  func.return %y : tensor<1x2x7x7xf32>
}

// -----

// 1-D, group 2, a pad larger than d·(k − 1): the first element is sliced off, the Conv is grouped.
// CT1: onnx.Slice(%x, %convtranspose.starts, %convtranspose.ends, %convtranspose.axes) : {{.*}} -> tensor<1x2x4xf32>
// CT1: onnx.Conv(%{{.*}}, %w.convtranspose) {onnx.node = "ct2", kernel_shape = array<i64: 3>, dilations = array<i64: 1>, group = 2 : i64, strides = array<i64: 1>, pads = array<i64: 0, 2>} : (tensor<1x2x4xf32>, tensor<2x1x3xf32>) -> tensor<1x2x4xf32>
// CT1-NOT: onnx.ConvTranspose
func.func @main(%x: tensor<1x2x5xf32> {onnx.name = "x"}) -> (tensor<1x2x4xf32> {onnx.name = "y"}) {
  %w = onnx.Initializer "w" = dense<1.0> : tensor<2x1x3xf32> : tensor<2x1x3xf32>
  %y = onnx.ConvTranspose(%x, %w) {group = 2 : i64, pads = array<i64: 3, 0>, onnx.node = "ct2"} : (tensor<1x2x5xf32>, tensor<2x1x3xf32>) -> tensor<1x2x4xf32>
  func.return %y : tensor<1x2x4xf32>
}

// RUN: spaq-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// One case per rule the onnx dialect checks against ONNX's own schemas (onnx.defs), plus the
// inline value of an Initializer. Syntax errors (--parsing-diagnostics) report with a location.

// Operand count.
// CHECK: onnx.Relu takes 1 input, got 2
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = onnx.Relu(%x, %x) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}

// -----

// CHECK: onnx.Conv takes 2 to 3 inputs, got 1
func.func @main(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> {
  %y = onnx.Conv(%x) : (tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
  func.return %y : tensor<1x1x4x4xf32>
}

// -----

// Result count.
// CHECK: onnx.Dropout has 1 to 2 outputs, got 3
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %a, %b, %c = onnx.Dropout(%x) : (tensor<4xf32>) -> (tensor<4xf32>, tensor<4xi1>, tensor<4xi1>)
  func.return %a : tensor<4xf32>
}

// -----

// An attribute the operator does not have (dialect-prefixed ones like spaq.* are allowed).
// CHECK: onnx.Relu has no attribute 'alpha'
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = onnx.Relu(%x) {spaq.note = "ok", alpha = 1.0 : f32} : (tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}

// -----

// CHECK: onnx.Gemm has no attribute 'transW'
func.func @main(%x: tensor<1x4xf32>, %w: tensor<2x4xf32>) -> tensor<1x2xf32> {
  %y = onnx.Gemm(%x, %w) {transW = 1 : i64} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// A required attribute that is missing.
// CHECK: onnx.Cast requires attribute 'to'
func.func @main(%x: tensor<4xf32>) -> tensor<4xi32> {
  %y = onnx.Cast(%x) : (tensor<4xf32>) -> tensor<4xi32>
  func.return %y : tensor<4xi32>
}

// -----

// An inline value whose shape is not the result's.
// CHECK: inline value of 'fc.bias' has the wrong shape
func.func @main() -> tensor<4xf32> {
  %b = onnx.Initializer "fc.bias" = dense<[1.0, 2.0]> : tensor<2xf32> : tensor<4xf32>
  func.return %b : tensor<4xf32>
}

// -----

// CHECK: inline value of 'w' has the wrong shape
func.func @main() -> tensor<2x4xf32> {
  %w = onnx.Initializer "w" = dense<0.5> : tensor<4x2xf32> : tensor<2x4xf32>
  func.return %w : tensor<2x4xf32>
}

// -----

// An operator the dialect does not know.
// CHECK: Operation onnx.Frobnicate is not registered
func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = onnx.Frobnicate(%x) : (tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}

// -----

func.func @attribute_type(%x: tensor<2x3x4xf32>) -> tensor<2x12xf32> {
  %y = onnx.Flatten(%x) {axis = "one"} : (tensor<2x3x4xf32>) -> tensor<2x12xf32>
  func.return %y : tensor<2x12xf32>
}
// CHECK: onnx.Flatten attribute 'axis' must be an integer, got "one"

// -----

func.func @variadic(%x: tensor<2xf32>) -> tensor<2xf32> {
  %y = onnx.Concat() {axis = 0 : i64} : () -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
// CHECK: onnx.Concat takes at least 1 input, got 0

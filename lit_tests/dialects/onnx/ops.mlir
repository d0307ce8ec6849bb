// RUN: spaq-opt %s | spaq-opt | filecheck %s
// RUN: SPAQ_ROUNDTRIP
// RUN: spaq-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Initializers with and without an inline value, NoValue, and ONNX ops with int, float,
// array and string attributes (and a dialect-prefixed one, `spaq.note`, which the ONNX
// schema check lets through); every form prints back as written (floats in full).

// CHECK-LABEL: func.func @main
// CHECK-SAME:  (%x: tensor<1x1x8x8xf32> {onnx.name = "input"}) -> (tensor<1x10xf32> {onnx.name = "probs"})
// CHECK-NEXT:  %w = onnx.Initializer "conv1.weight" : tensor<2x1x3x3xf32>
// CHECK-NEXT:  %b = onnx.Initializer "conv1.bias" = dense<[5.000000e-01, -2.500000e-01]> : tensor<2xf32> : tensor<2xf32>
// CHECK-NEXT:  %k = onnx.Initializer "k" = dense<3> : tensor<2x2xi64> : tensor<2x2xi64>
// CHECK-NEXT:  %none = onnx.NoValue : none
// CHECK-NEXT:  %c = onnx.Conv(%x, %w, %b) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>, group = 1 : i64, onnx.node = "conv1"} : (tensor<1x1x8x8xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x8x8xf32>
// CHECK-NEXT:  %r = onnx.Relu(%c) {spaq.note = "kept"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
// CHECK-NEXT:  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, auto_pad = "NOTSET"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:  %f = onnx.Flatten(%p) {axis = 1 : i64} : (tensor<1x2x4x4xf32>) -> tensor<1x32xf32>
// CHECK-NEXT:  %s, %s_1 = onnx.Split(%f) {axis = 1 : i64, num_outputs = 2 : i64} : (tensor<1x32xf32>) -> (tensor<1x16xf32>, tensor<1x16xf32>)
// CHECK-NEXT:  %fw = onnx.Initializer "fc.weight" : tensor<10x16xf32>
// CHECK-NEXT:  %g = onnx.Gemm(%s, %fw, %none) {transB = 1 : i64, alpha = 1.500000e+00 : f32} : (tensor<1x16xf32>, tensor<10x16xf32>, none) -> tensor<1x10xf32>
// CHECK-NEXT:  %g2 = onnx.Gemm(%s_1, %fw, %none) {transB = 1 : i64, alpha = 1.000000e+00 : f32, beta = 0.000000e+00 : f32} : (tensor<1x16xf32>, tensor<10x16xf32>, none) -> tensor<1x10xf32>
// CHECK-NEXT:  %sum = onnx.Add(%g, %g2) : (tensor<1x10xf32>, tensor<1x10xf32>) -> tensor<1x10xf32>
// CHECK-NEXT:  %sm = onnx.Softmax(%sum) {axis = 1 : i64} : (tensor<1x10xf32>) -> tensor<1x10xf32>
// CHECK-NEXT:  func.return %sm : tensor<1x10xf32>

// GENERIC:      "func.func"() <{sym_name = "main", function_type = (tensor<1x1x8x8xf32>) -> tensor<1x10xf32>, arg_attrs = [{onnx.name = "input"}], res_attrs = [{onnx.name = "probs"}]}>
// GENERIC:      %w = "onnx.Initializer"() <{weight_name = "conv1.weight"}> : () -> tensor<2x1x3x3xf32>
// GENERIC-NEXT: %b = "onnx.Initializer"() <{weight_name = "conv1.bias", value = dense<[5.000000e-01, -2.500000e-01]> : tensor<2xf32>}> : () -> tensor<2xf32>
// GENERIC-NEXT: %k = "onnx.Initializer"() <{weight_name = "k", value = dense<3> : tensor<2x2xi64>}> : () -> tensor<2x2xi64>
// GENERIC-NEXT: %none = "onnx.NoValue"() : () -> none
// GENERIC-NEXT: %c = "onnx.Conv"(%x, %w, %b) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>, group = 1 : i64, onnx.node = "conv1"} : (tensor<1x1x8x8xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x8x8xf32>
// GENERIC:      %s, %s_1 = "onnx.Split"(%f) {axis = 1 : i64, num_outputs = 2 : i64} : (tensor<1x32xf32>) -> (tensor<1x16xf32>, tensor<1x16xf32>)
// GENERIC:      %g = "onnx.Gemm"(%s, %fw, %none) {transB = 1 : i64, alpha = 1.500000e+00 : f32} : (tensor<1x16xf32>, tensor<10x16xf32>, none) -> tensor<1x10xf32>
// GENERIC:      "func.return"(%sm) : (tensor<1x10xf32>) -> ()
func.func @main(%x: tensor<1x1x8x8xf32> {onnx.name = "input"}) -> (tensor<1x10xf32> {onnx.name = "probs"}) {
  %w = onnx.Initializer "conv1.weight" : tensor<2x1x3x3xf32>
  %b = onnx.Initializer "conv1.bias" = dense<[0.5, -0.25]> : tensor<2xf32> : tensor<2xf32>
  %k = onnx.Initializer "k" = dense<3> : tensor<2x2xi64> : tensor<2x2xi64>
  %none = onnx.NoValue : none
  %c = onnx.Conv(%x, %w, %b) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>, group = 1 : i64, onnx.node = "conv1"} : (tensor<1x1x8x8xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x8x8xf32>
  %r = onnx.Relu(%c) {spaq.note = "kept"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, auto_pad = "NOTSET"} : (tensor<1x2x8x8xf32>) -> tensor<1x2x4x4xf32>
  %f = onnx.Flatten(%p) {axis = 1 : i64} : (tensor<1x2x4x4xf32>) -> tensor<1x32xf32>
  %s:2 = onnx.Split(%f) {axis = 1 : i64, num_outputs = 2 : i64} : (tensor<1x32xf32>) -> (tensor<1x16xf32>, tensor<1x16xf32>)
  %fw = onnx.Initializer "fc.weight" : tensor<10x16xf32>
  %g = onnx.Gemm(%s#0, %fw, %none) {transB = 1 : i64, alpha = 1.5 : f32} : (tensor<1x16xf32>, tensor<10x16xf32>, none) -> tensor<1x10xf32>
  %g2 = onnx.Gemm(%s#1, %fw, %none) {transB = 1 : i64, alpha = 1.0 : f32, beta = 0.0 : f32} : (tensor<1x16xf32>, tensor<10x16xf32>, none) -> tensor<1x10xf32>
  %sum = onnx.Add(%g, %g2) : (tensor<1x10xf32>, tensor<1x10xf32>) -> tensor<1x10xf32>
  %sm = onnx.Softmax(%sum) {axis = 1 : i64} : (tensor<1x10xf32>) -> tensor<1x10xf32>
  func.return %sm : tensor<1x10xf32>
}

// A second function: ops with attributes of the remaining kinds (int and float lists,
// strings), an int tensor as an initializer input, and an op with its optional output.
// CHECK-LABEL: func.func @more
// CHECK-NEXT:  %shape = onnx.Initializer "shape" = dense<[1, -1]> : tensor<2xi64> : tensor<2xi64>
// CHECK-NEXT:  %y = onnx.Reshape(%a, %shape) : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<1x6xf32>
// CHECK-NEXT:  %t = onnx.Transpose(%a) {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK-NEXT:  %c = onnx.Cast(%a) {to = 7 : i64} : (tensor<2x3xf32>) -> tensor<2x3xi64>
// CHECK-NEXT:  %r = onnx.Resize(%a) {mode = "nearest", coordinate_transformation_mode = "asymmetric"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:  %d, %mask = onnx.Dropout(%a) {seed = 0 : i64} : (tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xi1>)
// CHECK-NEXT:  %l = onnx.LeakyRelu(%a) {alpha = 1.000000e-01 : f32} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:  %v = onnx.Constant() {value_floats = array<f32: 1.000000e+00, 2.500000e-01>} : () -> tensor<2xf32>
// CHECK-NEXT:  func.return
func.func @more(%a: tensor<2x3xf32>) {
  %shape = onnx.Initializer "shape" = dense<[1, -1]> : tensor<2xi64> : tensor<2xi64>
  %y = onnx.Reshape(%a, %shape) : (tensor<2x3xf32>, tensor<2xi64>) -> tensor<1x6xf32>
  %t = onnx.Transpose(%a) {perm = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %c = onnx.Cast(%a) {to = 7 : i64} : (tensor<2x3xf32>) -> tensor<2x3xi64>
  %r = onnx.Resize(%a) {mode = "nearest", coordinate_transformation_mode = "asymmetric"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %d, %mask = onnx.Dropout(%a) {seed = 0 : i64} : (tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xi1>)
  %l = onnx.LeakyRelu(%a) {alpha = 0.1 : f32} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %v = onnx.Constant() {value_floats = array<f32: 1.0, 0.25>} : () -> tensor<2xf32>
  func.return
}

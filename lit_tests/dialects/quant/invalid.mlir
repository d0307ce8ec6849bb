// RUN: spaq-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// One case per verifier rule. !quant.q verifiers run while parsing and report without a
// location; syntax errors (--parsing-diagnostics) and op verifiers report with one.

// CHECK: !quant.q storage must be si or ui of 1, 2, 4, 8 bits, got i8
func.func @f(%a: tensor<4x8x!quant.q<i8:f32>>) {
  func.return
}

// -----

// CHECK: !quant.q storage must be si or ui of 1, 2, 4, 8 bits, got si3
func.func @f(%a: tensor<4x8x!quant.q<si3:f32>>) {
  func.return
}

// -----

// CHECK: !quant.q storage must be si or ui of 1, 2, 4, 8 bits, got si16
func.func @f(%a: tensor<4x8x!quant.q<si16:f32>>) {
  func.return
}

// -----

// CHECK: !quant.q storage must be si or ui of 1, 2, 4, 8 bits, got f32
func.func @f(%a: tensor<4x8x!quant.q<f32:f32>>) {
  func.return
}

// -----

// CHECK: !quant.q expressed type must be f32, f16 or bf16, got i32
func.func @f(%a: tensor<4x8x!quant.q<si8:i32>>) {
  func.return
}

// -----

// CHECK: !quant.q expressed type must be f32, f16 or bf16, got f64
func.func @f(%a: tensor<4x8x!quant.q<si8:f64>>) {
  func.return
}

// -----

// CHECK: !quant.q per_channel needs axis >= 0, got -1
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_channel>>) {
  func.return
}

// -----

// CHECK: !quant.q per_channel needs axis >= 0, got -2
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_channel axis=-2>>) {
  func.return
}

// -----

// CHECK: !quant.q per_group needs axis >= 0, got -1
func.func @f(%a: tensor<4x8x!quant.q<si4:f32, per_group group=32>>) {
  func.return
}

// -----

// CHECK: !quant.q per_group needs group > 0, got 0
func.func @f(%a: tensor<4x8x!quant.q<si4:f32, per_group axis=1>>) {
  func.return
}

// -----

// CHECK: !quant.q per_group needs group > 0, got -4
func.func @f(%a: tensor<4x8x!quant.q<si4:f32, per_group axis=1 group=-4>>) {
  func.return
}

// -----

// CHECK: !quant.q axis is only allowed with per_channel or per_group
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_tensor axis=0>>) {
  func.return
}

// -----

// CHECK: !quant.q axis is only allowed with per_channel or per_group
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_token axis=0>>) {
  func.return
}

// -----

// CHECK: !quant.q group is only allowed with per_group
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_channel axis=0 group=4>>) {
  func.return
}

// -----

// CHECK: !quant.q<si1> is binary (±1) and cannot be asymmetric
func.func @f(%a: tensor<4x8x!quant.q<si1:f32, asymmetric>>) {
  func.return
}

// -----

// CHECK: Expected `per_tensor`, `per_channel`, `per_group`, or `per_token`.
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_row>>) {
  func.return
}

// -----

// CHECK: Expected ':' between storage and expressed type
func.func @f(%a: tensor<4x8x!quant.q<si8, f32>>) {
  func.return
}

// -----

// CHECK: Expected '=' after 'axis'
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, per_channel axis 0>>) {
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: result element type must be !quant.q, got i8
  %q = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf32> -> tensor<2x3xi8>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf16>) {
  // CHECK: operand element type f16 differs from the expressed type of !quant.q<si8:f32>
  %q = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf16> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: shapes differ: operand [2, 3], result [3, 2]
  %q = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf32> -> tensor<3x2x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32, #sparse.nm<1:2>>) {
  // CHECK: encodings differ: operand #sparse.nm<1:2>, result none
  %q = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf32, #sparse.nm<1:2>> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: scale has 2 values, expected 1 (per_tensor)
  %q = quant.quantize %x {scale = array<f32: 1.0, 2.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: scale has 2 values, expected 3 (per_channel: dim 1 of [2, 3])
  %q = quant.quantize %x {scale = array<f32: 1.0, 2.0>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_channel axis=1>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: per_channel quantization needs the axis property
  %q = quant.quantize %x {scale = array<f32: 1.0, 2.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_channel axis=0>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: axis property 1 differs from the type's !quant.q<si8:f32, per_channel axis=0>
  %q = quant.quantize %x {scale = array<f32: 1.0, 2.0>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_channel axis=0>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: per_tensor quantization takes no axis property
  %q = quant.quantize %x {scale = array<f32: 1.0>, axis = 0 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: scale has 1 value, expected 0 (per_token scales are computed at run time)
  %q = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_token>>
  func.return
}

// -----

func.func @f(%x: tensor<2x8xf32>) {
  // CHECK: scale has 2 values, expected 6 (per_group: groups of 3 along dim 1 of [2, 8])
  %q = quant.quantize %x {scale = array<f32: 1.0, 2.0>, axis = 1 : i64} : tensor<2x8xf32> -> tensor<2x8x!quant.q<si4:f32, per_group axis=1 group=3>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: scale values must be positive and finite, got 0.0
  %q = quant.quantize %x {scale = array<f32: 0.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: scale values must be positive and finite, got -1.0
  %q = quant.quantize %x {scale = array<f32: -1.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: zero_point has 2 values, expected 1 (per_tensor)
  %q = quant.quantize %x {scale = array<f32: 1.0>, zero_point = array<i32: 1, 2>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<ui8:f32, asymmetric>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: zero_point 256 is outside [0, 255] of !quant.q<ui8:f32, asymmetric>
  %q = quant.quantize %x {scale = array<f32: 1.0>, zero_point = array<i32: 256>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<ui8:f32, asymmetric>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: zero_point -9 is outside [-8, 7] of !quant.q<si4:f32, asymmetric>
  %q = quant.quantize %x {scale = array<f32: 1.0>, zero_point = array<i32: -9>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si4:f32, asymmetric>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: symmetric !quant.q<si8:f32> needs zero points 0 (or none)
  %q = quant.quantize %x {scale = array<f32: 1.0>, zero_point = array<i32: 3>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: result !quant.q<si8:f32, per_channel axis=2> quantizes axis 2 of a rank-2 tensor
  %q = quant.quantize %x {scale = array<f32: 1.0, 1.0>, axis = 2 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_channel axis=2>>
  func.return
}

// -----

func.func @f(%x: tensor<2x3xf32>) {
  // CHECK: Expected attribute f32 but got f64
  %q = quant.quantize %x {scale = array<f64: 1.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%q: tensor<2x3x!quant.q<si8:f32>>) {
  // CHECK: result element type must be float, got i32
  %x = quant.dequantize %q {scale = array<f32: 1.0>} : tensor<2x3x!quant.q<si8:f32>> -> tensor<2x3xi32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3x!quant.q<si8:f32>>) {
  // CHECK: result element type f16 differs from the expressed type of !quant.q<si8:f32>
  %x = quant.dequantize %q {scale = array<f32: 1.0>} : tensor<2x3x!quant.q<si8:f32>> -> tensor<2x3xf16>
  func.return
}

// -----

func.func @f(%q: tensor<2x3x!quant.q<si8:f32>>) {
  // CHECK: shapes differ: operand [2, 3], result [2, 4]
  %x = quant.dequantize %q {scale = array<f32: 1.0>} : tensor<2x3x!quant.q<si8:f32>> -> tensor<2x4xf32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3x!quant.q<si8:f32, per_channel axis=1>>) {
  // CHECK: per_channel quantization needs the axis property
  %x = quant.dequantize %q {scale = array<f32: 1.0, 1.0, 1.0>} : tensor<2x3x!quant.q<si8:f32, per_channel axis=1>> -> tensor<2x3xf32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3xi16>) {
  // CHECK: operand element type must be !quant.q or i32, got i16
  %x = quant.dequantize %q {scale = array<f32: 1.0>} : tensor<2x3xi16> -> tensor<2x3xf32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3xi32>) {
  // CHECK: scale has 2 values, expected 1 (no axis: per tensor)
  %x = quant.dequantize %q {scale = array<f32: 1.0, 1.0>} : tensor<2x3xi32> -> tensor<2x3xf32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3xi32>) {
  // CHECK: scale has 2 values, expected 3 (one per index of dim 1 of [2, 3])
  %x = quant.dequantize %q {scale = array<f32: 1.0, 1.0>, axis = 1 : i64} : tensor<2x3xi32> -> tensor<2x3xf32>
  func.return
}

// -----

func.func @f(%q: tensor<2x3xi32>) {
  // CHECK: axis 2 is out of range for rank 2
  %x = quant.dequantize %q {scale = array<f32: 1.0, 1.0>, axis = 2 : i64} : tensor<2x3xi32> -> tensor<2x3xf32>
  func.return
}

// -----

func.func @f(%a: tensor<4x2xi16>) {
  // CHECK: operand element type must be i32, got i16
  %q = quant.requantize %a {scale = array<f64: 0.5>} : tensor<4x2xi16> -> tensor<4x2x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%a: tensor<4x2xi32>) {
  // CHECK: requantize produces per_tensor or per_channel results, got !quant.q<si8:f32, per_token>
  %q = quant.requantize %a {scale = array<f64: 0.5>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si8:f32, per_token>>
  func.return
}

// -----

func.func @f(%a: tensor<4x2xi32>) {
  // CHECK: scale has 2 values, expected 1 (no axis: per tensor)
  %q = quant.requantize %a {scale = array<f64: 0.5, 0.25>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%a: tensor<4x2xi32>) {
  // CHECK: zero_point has 2 values, expected 1 (per_tensor)
  %q = quant.requantize %a {scale = array<f64: 0.5>, zero_point = array<i32: 0, 0>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%a: tensor<4x2xi32>) {
  // CHECK: shapes differ: operand [4, 2], result [4, 3]
  %q = quant.requantize %a {scale = array<f64: 0.5>} : tensor<4x2xi32> -> tensor<4x3x!quant.q<si8:f32>>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: accumulator must be i32 for operands of at most 8 bits, got i16
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi16>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: accumulator (result element type) must be i32, got si32
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xsi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: input element type must be !quant.q, got f32
  %y = quant.gemm %x, %w : (tensor<4x9xf32>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>, "dense">) {
  // CHECK: weight encoding must be a sparse encoding, got "dense"
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>, "dense">) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>, #sparse.nm<2:4>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: input must not have an encoding, got #sparse.nm<2:4>
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>, #sparse.nm<2:4>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x3x3x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: expected rank-2 input [M, K], weight [N, K] and result [M, N], got [4, 3, 3], [8, 9], [4, 8]
  %y = quant.gemm %x, %w : (tensor<4x3x3x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x8x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: reduction sizes differ: input [4, 8] has K=8, weight [8, 9] has K=9
  %y = quant.gemm %x, %w : (tensor<4x8x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: result shape [4, 9] does not match [M, N] = [4, 8]
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x9xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>, %b: tensor<4xi32>) {
  // CHECK: bias must have shape [8], got [4]
  %y = quant.gemm %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>, tensor<4xi32>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>>, %b: tensor<8xf32>) {
  // CHECK: bias element type must be i32, got f32
  %y = quant.gemm %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>>, tensor<8xf32>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32, per_channel axis=1>>) {
  // CHECK: weight must be quantized per_tensor or per_channel axis=0 for integer compute, got !quant.q<si8:f32, per_channel axis=1>
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=1>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32, per_channel axis=1>>, %w: tensor<8x9x!quant.q<si8:f32>>) {
  // CHECK: input must be quantized per_tensor or per_token for integer compute, got !quant.q<si8:f32, per_channel axis=1>
  %y = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32, per_channel axis=1>>, tensor<8x9x!quant.q<si8:f32>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: input must be 4-D, got [4, 8, 8]
  %y = quant.conv %x, %w : (tensor<4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: kernel_shape [5, 5] differs from the weight's [3, 3]
  %y = quant.conv %x, %w {kernel_shape = array<i64: 5, 5>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: kernel_shape must be 2 values >= 1, got [3]
  %y = quant.conv %x, %w {kernel_shape = array<i64: 3>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: pads must be 4 values >= 0, got [1, 1]
  %y = quant.conv %x, %w {pads = array<i64: 1, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: strides must be 2 values >= 1, got [0, 1]
  %y = quant.conv %x, %w {strides = array<i64: 0, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: dilations must be 2 values >= 1, got [1, 1, 1]
  %y = quant.conv %x, %w {dilations = array<i64: 1, 1, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: group must be >= 1, got 0
  %y = quant.conv %x, %w {group = 0 : i64} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: input has 4 channels, weight [8, 4, 3, 3] with group 2 expects 8
  %y = quant.conv %x, %w {group = 2 : i64} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<6x1x3x3x!quant.q<si8:f32>>) {
  // CHECK: output channels 6 are not divisible by group 4
  %y = quant.conv %x, %w {group = 4 : i64} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<6x1x3x3x!quant.q<si8:f32>>) -> tensor<1x6x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: result has 4 channels, the weight has 8 output channels
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x4x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: result batch 2 differs from the input's 1
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<2x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: result [1, 8, 8, 8] has size 8 in dim 2, the convolution gives 6
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x8x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: result [1, 8, 6, 6] has size 6 in dim 3, the convolution gives 3
  %y = quant.conv %x, %w {strides = array<i64: 1, 2>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32, per_token>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: input must be quantized per_tensor for integer compute, got !quant.q<si8:f32, per_token>
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32, per_token>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>) {
  // CHECK: accumulator (result element type) must be i32, got f32
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>) -> tensor<1x8x6x6xf32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>>, %b: tensor<4xi32>) {
  // CHECK: bias must have shape [8], got [4]
  %y = quant.conv %x, %w, %b : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>>, tensor<4xi32>) -> tensor<1x8x6x6xi32>
  func.return
}

// -----

func.func @f(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32>, #sparse.block<2x2>>) {
  // CHECK: result must not have an encoding, got #sparse.block<2x2>
  %y = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32>, #sparse.block<2x2>>) -> tensor<1x8x6x6xi32, #sparse.block<2x2>>
  func.return
}

// -----

func.func @dynamic_not_per_token(%x: tensor<4x8xf32>) {
  %q, %s = quant.quantize_dynamic %x : tensor<4x8xf32> -> tensor<4x8x!quant.q<si8:f32>>, tensor<4x1xf32>
  func.return
}
// CHECK: result must be symmetric per_token, got !quant.q<si8:f32>

// -----

func.func @token_scale_shape(%acc: tensor<4x2xi32>, %s: tensor<4x2xf32>) {
  %y = quant.dequantize %acc, %s {axis = 1 : i64, scale = array<f32: 0.5, 0.25>} : tensor<4x2xi32>, tensor<4x2xf32> -> tensor<4x2xf32>
  func.return
}
// CHECK: token scale operand must be tensor<4x1xf32>, got tensor<4x2xf32>

// -----

// CHECK: !quant.q ternary needs symmetric si2 storage, got si4
func.func @f(%a: tensor<4x8x!quant.q<si4:f32, ternary>>) {
  func.return
}

// -----

// CHECK: !quant.q codebook=8: the table size must be 2, 4, 16 or 256 and at most 2^8
func.func @f(%a: tensor<4x8x!quant.q<si8:f32, codebook=8>>) {
  func.return
}

// -----

// CHECK: !quant.q codebook=256: the table size must be 2, 4, 16 or 256 and at most 2^4
func.func @f(%a: tensor<4x8x!quant.q<si4:f32, codebook=256>>) {
  func.return
}

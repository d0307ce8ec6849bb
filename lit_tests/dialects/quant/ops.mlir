// RUN: spaq-opt %s | spaq-opt | filecheck %s
// RUN: SPAQ_ROUNDTRIP
// RUN: spaq-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Every !quant.q spelling, as a function argument type. `per_tensor` and `symmetric` are
// the defaults and are not printed.
// CHECK-LABEL: func.func @types
// CHECK-SAME: tensor<4x!quant.q<si8:f32>>
// CHECK-SAME: tensor<4x!quant.q<si8:f32>>
// CHECK-SAME: tensor<4x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-SAME: tensor<4x!quant.q<si4:f16, per_group axis=1 group=128>>
// CHECK-SAME: tensor<4x!quant.q<si8:f32, per_token>>
// CHECK-SAME: tensor<4x!quant.q<ui8:f32, asymmetric>>
// CHECK-SAME: tensor<4x!quant.q<si1:f32>>
// CHECK-SAME: tensor<4x!quant.q<si2:bf16, per_channel axis=3>>
// CHECK-SAME: tensor<4x!quant.q<ui4:f16, per_group axis=0 group=32, asymmetric>>
// CHECK-SAME: tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
// CHECK-SAME: tensor<8x9x!quant.q<si4:f32, per_group axis=1 group=4>, #sparse.block<4x4>>
// CHECK-SAME: tensor<4x!quant.q<si2:f32, ternary>>
// CHECK-SAME: tensor<8x9x!quant.q<si8:f32, per_channel axis=0, codebook=16>, #sparse.unstructured<bitmask>>
// CHECK-SAME: tensor<4x!quant.q<si4:f32, codebook=4>>
// GENERIC: "func.func"() <{sym_name = "types", function_type = (tensor<4x!quant.q<si8:f32>>, tensor<4x!quant.q<si8:f32>>, tensor<4x!quant.q<si8:f32, per_channel axis=0>>
func.func @types(%a: tensor<4x!quant.q<si8:f32>>,
                 %b: tensor<4x!quant.q<si8:f32, per_tensor, symmetric>>,
                 %c: tensor<4x!quant.q<si8:f32, per_channel axis=0>>,
                 %d: tensor<4x!quant.q<si4:f16, per_group axis=1 group=128>>,
                 %e: tensor<4x!quant.q<si8:f32, per_token>>,
                 %f: tensor<4x!quant.q<ui8:f32, asymmetric>>,
                 %g: tensor<4x!quant.q<si1:f32>>,
                 %h: tensor<4x!quant.q<si2:bf16, per_channel axis=3>>,
                 %i: tensor<4x!quant.q<ui4:f16, per_group group=32 axis=0, asymmetric>>,
                 %j: tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>,
                 %k: tensor<8x9x!quant.q<si4:f32, per_group axis=1 group=4>, #sparse.block<4x4>>,
                 %l: tensor<4x!quant.q<si2:f32, ternary>>,
                 %m: tensor<8x9x!quant.q<si8:f32, per_channel axis=0, codebook=16>, #sparse.unstructured<bitmask>>,
                 %n: tensor<4x!quant.q<si4:f32, codebook=4>>) {
  func.return
}

// CHECK-LABEL: func.func @quantize
func.func @quantize(%x: tensor<2x3xf32>, %h: tensor<2x8xf16>, %w: tensor<2x9xf32, #sparse.nm<2:4>>) {
  // CHECK-NEXT: %t = quant.quantize %x {scale = array<f32: 5.000000e-01>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  // CHECK-NEXT: %c = quant.quantize %x {scale = array<f32: 1.000000e-01, 2.000000e-01, 3.000000e-01>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si4:f32, per_channel axis=1>>
  // CHECK-NEXT: %g = quant.quantize %h {scale = array<f32: 1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00>, axis = 1 : i64} : tensor<2x8xf16> -> tensor<2x8x!quant.q<si4:f16, per_group axis=1 group=4>>
  // CHECK-NEXT: %k = quant.quantize %x {scale = array<f32>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_token>>
  // CHECK-NEXT: %a = quant.quantize %x {scale = array<f32: 2.500000e-01>, zero_point = array<i32: 128>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<ui8:f32, asymmetric>>
  // CHECK-NEXT: %ac = quant.quantize %x {scale = array<f32: 1.000000e+00, 1.000000e+00, 1.000000e+00>, zero_point = array<i32: -1, 0, 7>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si4:f32, per_channel axis=1, asymmetric>>
  // CHECK-NEXT: %b = quant.quantize %x {scale = array<f32: 1.000000e+00>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si1:f32>>
  // CHECK-NEXT: %s = quant.quantize %w {scale = array<f32: 1.000000e-01, 2.000000e-01>, axis = 0 : i64} : tensor<2x9xf32, #sparse.nm<2:4>> -> tensor<2x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
  // GENERIC: %t = "quant.quantize"(%x) <{scale = array<f32: 5.000000e-01>}> : (tensor<2x3xf32>) -> tensor<2x3x!quant.q<si8:f32>>
  // GENERIC: %a = "quant.quantize"(%x) <{scale = array<f32: 2.500000e-01>, zero_point = array<i32: 128>}> : (tensor<2x3xf32>) -> tensor<2x3x!quant.q<ui8:f32, asymmetric>>
  %t = quant.quantize %x {scale = array<f32: 0.5>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
  %c = quant.quantize %x {scale = array<f32: 0.1, 0.2, 0.3>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si4:f32, per_channel axis=1>>
  %g = quant.quantize %h {scale = array<f32: 1.0, 2.0, 3.0, 4.0>, axis = 1 : i64} : tensor<2x8xf16> -> tensor<2x8x!quant.q<si4:f16, per_group axis=1 group=4>>
  %k = quant.quantize %x {scale = array<f32>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_token>>
  %a = quant.quantize %x {scale = array<f32: 0.25>, zero_point = array<i32: 128>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<ui8:f32, asymmetric>>
  %ac = quant.quantize %x {scale = array<f32: 1.0, 1.0, 1.0>, zero_point = array<i32: -1, 0, 7>, axis = 1 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si4:f32, per_channel axis=1, asymmetric>>
  %b = quant.quantize %x {scale = array<f32: 1.0>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si1:f32>>
  %s = quant.quantize %w {scale = array<f32: 0.1, 0.2>, axis = 0 : i64} : tensor<2x9xf32, #sparse.nm<2:4>> -> tensor<2x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
  func.return
}

// CHECK-LABEL: func.func @dequantize
func.func @dequantize(%q: tensor<2x3x!quant.q<si8:f32>>, %h: tensor<2x3x!quant.q<ui8:f16, asymmetric>>,
                      %c: tensor<2x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<1:2>>,
                      %acc: tensor<2x3xi32>) {
  // CHECK-NEXT: %x = quant.dequantize %q {scale = array<f32: 5.000000e-01>} : tensor<2x3x!quant.q<si8:f32>> -> tensor<2x3xf32>
  // CHECK-NEXT: %y = quant.dequantize %h {scale = array<f32: 5.000000e-01>, zero_point = array<i32: 3>} : tensor<2x3x!quant.q<ui8:f16, asymmetric>> -> tensor<2x3xf16>
  // CHECK-NEXT: %z = quant.dequantize %c {scale = array<f32: 1.000000e+00, 2.000000e+00>, axis = 0 : i64} : tensor<2x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<1:2>> -> tensor<2x3xf32, #sparse.nm<1:2>>
  // CHECK-NEXT: %t = quant.dequantize %acc {scale = array<f32: 1.000000e-03>} : tensor<2x3xi32> -> tensor<2x3xf32>
  // CHECK-NEXT: %u = quant.dequantize %acc {scale = array<f32: 1.000000e-03, 2.000000e-03, 3.000000e-03>, axis = 1 : i64} : tensor<2x3xi32> -> tensor<2x3xf32>
  // GENERIC: %u = "quant.dequantize"(%acc) <{scale = array<f32: 1.000000e-03, 2.000000e-03, 3.000000e-03>, axis = 1 : i64}> : (tensor<2x3xi32>) -> tensor<2x3xf32>
  %x = quant.dequantize %q {scale = array<f32: 0.5>} : tensor<2x3x!quant.q<si8:f32>> -> tensor<2x3xf32>
  %y = quant.dequantize %h {scale = array<f32: 0.5>, zero_point = array<i32: 3>} : tensor<2x3x!quant.q<ui8:f16, asymmetric>> -> tensor<2x3xf16>
  %z = quant.dequantize %c {scale = array<f32: 1.0, 2.0>, axis = 0 : i64} : tensor<2x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<1:2>> -> tensor<2x3xf32, #sparse.nm<1:2>>
  %t = quant.dequantize %acc {scale = array<f32: 0.001>} : tensor<2x3xi32> -> tensor<2x3xf32>
  %u = quant.dequantize %acc {scale = array<f32: 0.001, 0.002, 0.003>, axis = 1 : i64} : tensor<2x3xi32> -> tensor<2x3xf32>
  func.return
}

// CHECK-LABEL: func.func @requantize
func.func @requantize(%acc: tensor<4x2xi32>) {
  // CHECK-NEXT: %q = quant.requantize %acc {scale = array<f64: 1.230000e-02>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si8:f32>>
  // CHECK-NEXT: %r = quant.requantize %acc {scale = array<f64: 1.000000e-02, 2.000000e-02>, zero_point = array<i32: 5>, axis = 1 : i64} : tensor<4x2xi32> -> tensor<4x2x!quant.q<ui8:f32, asymmetric>>
  // CHECK-NEXT: %c = quant.requantize %acc {scale = array<f64: 5.000000e-01>, zero_point = array<i32: 0, 1>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si4:f32, per_channel axis=1, asymmetric>>
  // GENERIC: %r = "quant.requantize"(%acc) <{scale = array<f64: 1.000000e-02, 2.000000e-02>, zero_point = array<i32: 5>, axis = 1 : i64}> : (tensor<4x2xi32>) -> tensor<4x2x!quant.q<ui8:f32, asymmetric>>
  %q = quant.requantize %acc {scale = array<f64: 0.0123>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si8:f32>>
  %r = quant.requantize %acc {scale = array<f64: 0.01, 0.02>, zero_point = array<i32: 5>, axis = 1 : i64} : tensor<4x2xi32> -> tensor<4x2x!quant.q<ui8:f32, asymmetric>>
  %c = quant.requantize %acc {scale = array<f64: 0.5>, zero_point = array<i32: 0, 1>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<si4:f32, per_channel axis=1, asymmetric>>
  func.return
}

// CHECK-LABEL: func.func @gemm
func.func @gemm(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>,
                %ws: tensor<8x9x!quant.q<si4:f32>, #sparse.nm<2:4>>, %b: tensor<8xi32>,
                %t: tensor<4x9x!quant.q<ui8:f32, per_token, asymmetric>>) {
  // CHECK-NEXT: %y = quant.gemm %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<4x8xi32>
  // CHECK-NEXT: %n = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<4x8xi32>
  // CHECK-NEXT: %s = quant.gemm %t, %ws, %b : (tensor<4x9x!quant.q<ui8:f32, per_token, asymmetric>>, tensor<8x9x!quant.q<si4:f32>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<4x8xi32>
  // GENERIC: %y = "quant.gemm"(%x, %w, %b) : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<4x8xi32>
  // GENERIC: %n = "quant.gemm"(%x, %w) : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<4x8xi32>
  %y = quant.gemm %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<4x8xi32>
  %n = quant.gemm %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<4x8xi32>
  %s = quant.gemm %t, %ws, %b : (tensor<4x9x!quant.q<ui8:f32, per_token, asymmetric>>, tensor<8x9x!quant.q<si4:f32>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<4x8xi32>
  func.return
}

// CHECK-LABEL: func.func @conv
func.func @conv(%x: tensor<1x4x8x8x!quant.q<si8:f32>>, %w: tensor<8x4x3x3x!quant.q<si8:f32, per_channel axis=0>>,
                %b: tensor<8xi32>, %wg: tensor<8x2x3x3x!quant.q<si4:f32>, #sparse.nm<2:4>>,
                %w1: tensor<8x4x1x1x!quant.q<si8:f32>>) {
  // CHECK-NEXT: %y = quant.conv %x, %w, %b {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<1x8x8x8xi32>
  // CHECK-NEXT: %v = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<1x8x6x6xi32>
  // CHECK-NEXT: %g = quant.conv %x, %wg, %b {dilations = array<i64: 2, 2>, group = 2 : i64, pads = array<i64: 0, 1, 2, 3>, strides = array<i64: 2, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x2x3x3x!quant.q<si4:f32>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<1x8x3x8xi32>
  // CHECK-NEXT: %p = quant.conv %x, %w1 {strides = array<i64: 2, 2>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x1x1x!quant.q<si8:f32>>) -> tensor<1x8x4x4xi32>
  // GENERIC: %g = "quant.conv"(%x, %wg, %b) <{dilations = array<i64: 2, 2>, group = 2 : i64, pads = array<i64: 0, 1, 2, 3>, strides = array<i64: 2, 1>}> : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x2x3x3x!quant.q<si4:f32>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<1x8x3x8xi32>
  %y = quant.conv %x, %w, %b {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<1x8x8x8xi32>
  %v = quant.conv %x, %w : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x3x3x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<1x8x6x6xi32>
  %g = quant.conv %x, %wg, %b {dilations = array<i64: 2, 2>, group = 2 : i64, pads = array<i64: 0, 1, 2, 3>, strides = array<i64: 2, 1>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x2x3x3x!quant.q<si4:f32>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<1x8x3x8xi32>
  %p = quant.conv %x, %w1 {strides = array<i64: 2, 2>} : (tensor<1x4x8x8x!quant.q<si8:f32>>, tensor<8x4x1x1x!quant.q<si8:f32>>) -> tensor<1x8x4x4xi32>
  func.return
}

// Dynamic per-token quantization and the dequantization of its accumulator.
func.func @per_token(%x: tensor<4x8xf32>, %acc: tensor<4x2xi32>) -> tensor<4x2xf32> {
  %q, %s = quant.quantize_dynamic %x : tensor<4x8xf32> -> tensor<4x8x!quant.q<si8:f32, per_token>>, tensor<4x1xf32>
  %y = quant.dequantize %acc, %s {axis = 1 : i64, scale = array<f32: 0.5, 0.25>} : tensor<4x2xi32>, tensor<4x1xf32> -> tensor<4x2xf32>
  func.return %y : tensor<4x2xf32>
}
// CHECK-LABEL: func.func @per_token
// CHECK-NEXT:    %q, %s = quant.quantize_dynamic %x : tensor<4x8xf32> -> tensor<4x8x!quant.q<si8:f32, per_token>>, tensor<4x1xf32>
// CHECK-NEXT:    %y = quant.dequantize %acc, %s {axis = 1 : i64, scale = array<f32: 5.000000e-01, 2.500000e-01>} : tensor<4x2xi32>, tensor<4x1xf32> -> tensor<4x2xf32>
// GENERIC: "quant.quantize_dynamic"(%{{.*}}) : (tensor<4x8xf32>) -> (tensor<4x8x!quant.q<si8:f32, per_token>>, tensor<4x1xf32>)

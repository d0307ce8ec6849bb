// RUN: spaq-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

// Attribute verifiers run while parsing and report without a location; syntax errors
// (--parsing-diagnostics) and op verifiers report with one.

// CHECK: #sparse.nm<4:4>: expected 0 < N < M <= 16
func.func @f(%a: tensor<32x64xf32, #sparse.nm<4:4>>) {
  func.return
}

// -----

// CHECK: #sparse.nm<0:4>: expected 0 < N < M <= 16
func.func @f(%a: tensor<32x64xf32, #sparse.nm<0:4>>) {
  func.return
}

// -----

// CHECK: #sparse.nm<2:32>: expected 0 < N < M <= 16
func.func @f(%a: tensor<32x64xf32, #sparse.nm<2:32>>) {
  func.return
}

// -----

// CHECK: #sparse.block<4x0>: block sizes must be > 0
func.func @f(%a: tensor<32x64xf32, #sparse.block<4x0>>) {
  func.return
}

// -----

// CHECK: #sparse.block<0x4>: block sizes must be > 0
func.func @f(%a: tensor<32x64xf32, #sparse.block<0x4>>) {
  func.return
}

// -----

// CHECK: Expected `bitmask`, or `csr`.
func.func @f(%a: tensor<32x64xf32, #sparse.unstructured<coo>>) {
  func.return
}

// -----

// CHECK: Expected ':' between N and M
func.func @f(%a: tensor<32x64xf32, #sparse.nm<2x4>>) {
  func.return
}

// -----

func.func @f(%w: tensor<8x9xf32, #sparse.block<4x4>>) {
  // CHECK: operand must not have an encoding, got #sparse.block<4x4>
  %s = sparse.pack %w : tensor<8x9xf32, #sparse.block<4x4>> -> tensor<8x9xf32, #sparse.nm<2:4>>
  func.return
}

// -----

func.func @f(%w: tensor<8x9xf32>) {
  // CHECK: result must have a sparse encoding, got tensor<8x9xf32>
  %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32>
  func.return
}

// -----

func.func @f(%w: tensor<8x9xf32>) {
  // CHECK: result must have a sparse encoding, got tensor<8x9xf32, "csr">
  %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, "csr">
  func.return
}

// -----

func.func @f(%w: tensor<8x9xf32>) {
  // CHECK: shapes differ: operand [8, 9], result [9, 8]
  %s = sparse.pack %w : tensor<8x9xf32> -> tensor<9x8xf32, #sparse.nm<2:4>>
  func.return
}

// -----

func.func @f(%w: tensor<8x9xf32>) {
  // CHECK: element types differ: operand f32, result f16
  %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf16, #sparse.nm<2:4>>
  func.return
}

// -----

func.func @f(%s: tensor<8x9xf32>) {
  // CHECK: operand must have a sparse encoding, got tensor<8x9xf32>
  %d = sparse.unpack %s : tensor<8x9xf32> -> tensor<8x9xf32>
  func.return
}

// -----

func.func @f(%s: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: result must not have an encoding, got #sparse.nm<2:4>
  %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xf32, #sparse.nm<2:4>>
  func.return
}

// -----

func.func @f(%s: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: shapes differ: operand [8, 9], result [8, 8]
  %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x8xf32>
  func.return
}

// -----

func.func @f(%s: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: element types differ: operand f32, result bf16
  %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xbf16>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9xf32>) {
  // CHECK: weight must have a sparse encoding (use quant.gemm or a dense matmul), got tensor<8x9xf32>
  %y = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9xf32>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32, #sparse.nm<2:4>>, %w: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: input must not have an encoding, got #sparse.nm<2:4>
  %y = sparse.matmul %x, %w : (tensor<4x9xf32, #sparse.nm<2:4>>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x1x3x3xf32, #sparse.nm<2:4>>) {
  // CHECK: expected rank-2 input [M, K], weight [N, K] and result [M, N], got [4, 9], [8, 1, 3, 3], [4, 8]
  %y = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x1x3x3xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x10xf32>, %w: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: reduction sizes differ: input [4, 10] has K=10, weight [8, 9] has K=9
  %y = sparse.matmul %x, %w : (tensor<4x10xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: result shape [8, 4] does not match [M, N] = [4, 8]
  %y = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<8x4xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9xf32, #sparse.nm<2:4>>) {
  // CHECK: float matmul needs equal element types, got input f32, weight f32, result f16
  %y = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf16>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) {
  // CHECK: input and weight must be both float or both !quant.q, got f32 and !quant.q<si8:f32>
  %y = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) {
  // CHECK: accumulator must be i32 for operands of at most 8 bits, got i16
  %y = sparse.matmul %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) -> tensor<4x8xi16>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) {
  // CHECK: accumulator (result element type) must be i32, got f32
  %y = sparse.matmul %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32, per_channel axis=1>, #sparse.nm<2:4>>) {
  // CHECK: weight must be quantized per_tensor or per_channel axis=0 for integer compute, got !quant.q<si8:f32, per_channel axis=1>
  %y = sparse.matmul %x, %w : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=1>, #sparse.nm<2:4>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32, per_group axis=1 group=3>>, %w: tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) {
  // CHECK: input must be quantized per_tensor or per_token for integer compute, got !quant.q<si8:f32, per_group axis=1 group=3>
  %y = sparse.matmul %x, %w : (tensor<4x9x!quant.q<si8:f32, per_group axis=1 group=3>>, tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>) -> tensor<4x8xi32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9xf32>, %w: tensor<8x9xf32, #sparse.nm<2:4>>, %b: tensor<4xf32>) {
  // CHECK: bias must have shape [8], got [4]
  %y = sparse.matmul %x, %w, %b : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>, tensor<4xf32>) -> tensor<4x8xf32>
  func.return
}

// -----

func.func @f(%x: tensor<4x9x!quant.q<si8:f32>>, %w: tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>, %b: tensor<8xf32>) {
  // CHECK: bias element type must be i32, got f32
  %y = sparse.matmul %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32>, #sparse.nm<2:4>>, tensor<8xf32>) -> tensor<4x8xi32>
  func.return
}

// RUN: spaq-opt %s | spaq-opt | filecheck %s
// RUN: SPAQ_ROUNDTRIP
// RUN: spaq-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Every encoding spelling, as a function argument type.
// CHECK-LABEL: func.func @encodings
// CHECK-SAME: tensor<32x64xf32, #sparse.nm<2:4>>
// CHECK-SAME: tensor<32x64xf32, #sparse.nm<1:2>>
// CHECK-SAME: tensor<32x64xf32, #sparse.nm<15:16>>
// CHECK-SAME: tensor<32x64xf32, #sparse.block<4x4>>
// CHECK-SAME: tensor<8x1x3x3xf32, #sparse.block<1x9>>
// CHECK-SAME: tensor<32x64xf32, #sparse.unstructured<bitmask>>
// CHECK-SAME: tensor<32x64xf32, #sparse.unstructured<csr>>
// CHECK-SAME: tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
func.func @encodings(%a: tensor<32x64xf32, #sparse.nm<2:4>>,
                     %b: tensor<32x64xf32, #sparse.nm<1:2>>,
                     %c: tensor<32x64xf32, #sparse.nm<15:16>>,
                     %d: tensor<32x64xf32, #sparse.block<4x4>>,
                     %e: tensor<8x1x3x3xf32, #sparse.block<1x9>>,
                     %f: tensor<32x64xf32, #sparse.unstructured<bitmask>>,
                     %g: tensor<32x64xf32, #sparse.unstructured<csr>>,
                     %h: tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>) {
  func.return
}

// CHECK-LABEL: func.func @pack_unpack
func.func @pack_unpack(%w: tensor<8x9xf32>, %c: tensor<8x1x3x3xf32>, %q: tensor<8x9x!quant.q<si4:f32>>) {
  // CHECK-NEXT: %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.nm<2:4>>
  // CHECK-NEXT: %bs = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.block<4x4>>
  // CHECK-NEXT: %us = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.unstructured<bitmask>>
  // CHECK-NEXT: %cs = sparse.pack %c : tensor<8x1x3x3xf32> -> tensor<8x1x3x3xf32, #sparse.nm<1:4>>
  // CHECK-NEXT: %qs = sparse.pack %q : tensor<8x9x!quant.q<si4:f32>> -> tensor<8x9x!quant.q<si4:f32>, #sparse.unstructured<csr>>
  // CHECK-NEXT: %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xf32>
  // CHECK-NEXT: %qd = sparse.unpack %qs : tensor<8x9x!quant.q<si4:f32>, #sparse.unstructured<csr>> -> tensor<8x9x!quant.q<si4:f32>>
  // GENERIC: %s = "sparse.pack"(%w) : (tensor<8x9xf32>) -> tensor<8x9xf32, #sparse.nm<2:4>>
  // GENERIC: %d = "sparse.unpack"(%s) : (tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<8x9xf32>
  %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.nm<2:4>>
  %bs = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.block<4x4>>
  %us = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.unstructured<bitmask>>
  %cs = sparse.pack %c : tensor<8x1x3x3xf32> -> tensor<8x1x3x3xf32, #sparse.nm<1:4>>
  %qs = sparse.pack %q : tensor<8x9x!quant.q<si4:f32>> -> tensor<8x9x!quant.q<si4:f32>, #sparse.unstructured<csr>>
  %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xf32>
  %qd = sparse.unpack %qs : tensor<8x9x!quant.q<si4:f32>, #sparse.unstructured<csr>> -> tensor<8x9x!quant.q<si4:f32>>
  func.return
}

// CHECK-LABEL: func.func @matmul
func.func @matmul(%x: tensor<4x9xf32>, %w: tensor<8x9xf32, #sparse.nm<2:4>>, %b: tensor<8xf32>,
                  %xq: tensor<4x9x!quant.q<si8:f32, per_token>>,
                  %wq: tensor<8x9x!quant.q<si4:f32, per_channel axis=0>, #sparse.nm<2:4>>,
                  %bq: tensor<8xi32>,
                  %wb: tensor<8x9x!quant.q<si8:f32>, #sparse.block<2x3>>) {
  // CHECK-NEXT: %y = sparse.matmul %x, %w, %b : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>, tensor<8xf32>) -> tensor<4x8xf32>
  // CHECK-NEXT: %y2 = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  // CHECK-NEXT: %acc = sparse.matmul %xq, %wq, %bq : (tensor<4x9x!quant.q<si8:f32, per_token>>, tensor<8x9x!quant.q<si4:f32, per_channel axis=0>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<4x8xi32>
  // CHECK-NEXT: %acc2 = sparse.matmul %xq, %wb : (tensor<4x9x!quant.q<si8:f32, per_token>>, tensor<8x9x!quant.q<si8:f32>, #sparse.block<2x3>>) -> tensor<4x8xi32>
  // GENERIC: %y = "sparse.matmul"(%x, %w, %b) : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>, tensor<8xf32>) -> tensor<4x8xf32>
  // GENERIC: %y2 = "sparse.matmul"(%x, %w) : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  %y = sparse.matmul %x, %w, %b : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>, tensor<8xf32>) -> tensor<4x8xf32>
  %y2 = sparse.matmul %x, %w : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>) -> tensor<4x8xf32>
  %acc = sparse.matmul %xq, %wq, %bq : (tensor<4x9x!quant.q<si8:f32, per_token>>, tensor<8x9x!quant.q<si4:f32, per_channel axis=0>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<4x8xi32>
  %acc2 = sparse.matmul %xq, %wb : (tensor<4x9x!quant.q<si8:f32, per_token>>, tensor<8x9x!quant.q<si8:f32>, #sparse.block<2x3>>) -> tensor<4x8xi32>
  func.return
}

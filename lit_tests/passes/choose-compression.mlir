// RUN: spaq-opt %s -p 'choose-compression{sparsity="2:4" precision=int8}' | filecheck %s
// RUN: spaq-opt %s -p 'choose-compression{precision=int8 skip="conv1,fc2,fc5"}' | filecheck %s --check-prefix=SKIP
// RUN: spaq-opt %s -p 'choose-compression{sparsity="2:4" skip=fc1}' | filecheck %s --check-prefix=SPARSE
// RUN: spaq-opt %s -p choose-compression | filecheck %s --check-prefix=NONE
// RUN: not spaq-opt %s -p 'choose-compression{precision=int3}' 2>&1 | filecheck %s --check-prefix=ERR-PRECISION
// RUN: not spaq-opt %s -p 'choose-compression{sparsity="4:2"}' 2>&1 | filecheck %s --check-prefix=ERR-SPARSITY
// RUN: not spaq-opt %s -p 'choose-compression{sparsity=dense2}' 2>&1 | filecheck %s --check-prefix=ERR-SPARSITY2
// RUN: not spaq-opt %s -p 'choose-compression{precision=int8 skip="fc9,fc1,conv0"}' 2>&1 | filecheck %s --check-prefix=ERR-SKIP
// RUN: not spaq-opt %s -p 'choose-compression{sparsity=csr density=1.5}' 2>&1 | filecheck %s --check-prefix=ERR-DENSITY
// RUN: not spaq-opt %s -p 'choose-compression{askip=always}' 2>&1 | filecheck %s --check-prefix=ERR-ASKIP
// RUN: spaq-opt %s -p 'choose-compression{precision=fp8-e4m3 sparsity=block-4x4 density=0.25}' | filecheck %s --check-prefix=FP8
// RUN: spaq-opt %s -p 'choose-compression{precision=codebook sparsity=unstructured-csr}' | filecheck %s --check-prefix=CODEBOOK
// RUN: spaq-opt %s -p 'choose-compression{precision=ternary sparsity=unstructured-bitmask density="30%"}' | filecheck %s --check-prefix=TERNARY
// RUN: spaq-opt %s -p 'choose-compression{precision=binary}' | filecheck %s --check-prefix=BINARY
// RUN: spaq-opt %s -p 'choose-compression{precision=int4}' | filecheck %s --check-prefix=INT4
// RUN: spaq-opt %s -p 'choose-compression{precision=int2 askip=relu}' | filecheck %s --check-prefix=ASKIP
// RUN: spaq-opt %s -p 'choose-compression{precision=int4-a4}' | filecheck %s --check-prefix=A4
// RUN: not spaq-opt %s -p 'choose-compression{precision=fp16-a4}' 2>&1 | filecheck %s --check-prefix=ERR-A4

// Every compressible layer (a Conv, or a Gemm in W[N, K] form, with a constant weight)
// without a decision gets the same one; a pinned decision (fc2) is kept as written; a Gemm
// with transB = 0 (fc3) or a weight that is not a constant (fc4) is not a layer to compress.
// N:M sparsity goes only to layers whose reduction is whole groups of M: conv1 (K = 1)
// stays dense, conv2 (K = 1 * 2 * 2) and fc1 (K = 8) get 2:4.

// CHECK-LABEL: func.func @main
// CHECK:       onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// CHECK:       onnx.Conv(%x4, %wc2) {kernel_shape = array<i64: 2, 2>, onnx.node = "conv2", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// CHECK:       onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// CHECK:       onnx.Gemm(%y1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<1:4>}} :
// CHECK:       onnx.Gemm(%x, %w3) {onnx.node = "fc3"} :
// CHECK:       onnx.Gemm(%x, %wx) {transB = 1 : i64, onnx.node = "fc4"} :
// CHECK-NEXT:  func.return

// skip leaves the named layers as they are (a pinned one keeps its own decision); the
// others get int8 without sparsity.
// SKIP:       onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} :
// SKIP:       onnx.Conv(%x4, %wc2) {kernel_shape = array<i64: 2, 2>, onnx.node = "conv2", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// SKIP:       onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// SKIP:       onnx.Gemm(%y1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<1:4>}} :
// SKIP-NOT:   spaq.compression
// SKIP:       func.return

// Sparsity alone: conv1 cannot take it and gets no decision at all.
// SPARSE:       onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} :
// SPARSE:       onnx.Conv(%x4, %wc2) {kernel_shape = array<i64: 2, 2>, onnx.node = "conv2", spaq.compression = {sparsity = #sparse.nm<2:4>}} :
// SPARSE:       onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1"} :
// SPARSE:       onnx.Gemm(%y1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<1:4>}} :

// Without options (dense fp32) nothing changes but the pinned layer's own decision.
// NONE:       onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} :
// NONE:       onnx.Conv(%x4, %wc2) {kernel_shape = array<i64: 2, 2>, onnx.node = "conv2"} :
// NONE:       onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1"} :
// NONE:       onnx.Gemm(%y1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<1:4>}} :
// NONE-NOT:   spaq.compression

// ERR-PRECISION: spaq-opt: error: precision 'int3' is not one of fp32, fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int8-dynamic, int4, int2, ternary, binary, codebook[-2|-4|-16|-256]
// ERR-SPARSITY: spaq-opt: error: sparsity '4:2': expected N:M with 0 < N < M (e.g. 2:4) or 'none'
// ERR-SPARSITY2: spaq-opt: error: sparsity 'dense2': expected none, N:M (e.g. 2:4), block-RxC (e.g. block-4x4), unstructured-bitmask or unstructured-csr
// ERR-DENSITY: spaq-opt: error: density '1.5': expected a fraction in (0, 1] (e.g. 0.25) or a percentage (25%)
// ERR-ASKIP: spaq-opt: error: askip 'always' is not one of none, relu

// Every precision is a pair of types (weights, activations); block and unstructured
// sparsity carry the density pruning keeps; askip=relu marks layers whose input is a Relu's
// output (fc2 here, through the Relu of fc1).
// FP8:       onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.block<4x4>, density = 2.500000e-01 : f32, weights = f8E4M3FN, activations = f8E4M3FN}} :
// CODEBOOK:  onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.unstructured<csr>, density = 5.000000e-01 : f32, weights = !quant.q<si8:f32, per_channel axis=0, codebook=16>, activations = !quant.q<si8:f32>}} :
// TERNARY:   onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.unstructured<bitmask>, density = 3.000000e-01 : f32, weights = !quant.q<si2:f32, ternary>, activations = !quant.q<si8:f32>}} :
// BINARY:    onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si1:f32>, activations = !quant.q<si8:f32>}} :
// INT4:      onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si4:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// ASKIP:     onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si2:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// ASKIP:     onnx.Gemm(%r1, %w5) {transB = 1 : i64, onnx.node = "fc5", spaq.compression = {weights = !quant.q<si2:f32, per_channel axis=0>, activations = !quant.q<si8:f32>, askip = true}} :
// -a4: 4-bit activations for Gemm layers; convolutions keep int8.
// A4:        onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1", spaq.compression = {weights = !quant.q<si4:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} :
// A4:        onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si4:f32, per_channel axis=0>, activations = !quant.q<si4:f32>}} :
// ERR-A4: spaq-opt: error: precision 'fp16-a4': the activation suffix is -a8, -a4 or -a2 after an integer weight precision (e.g. int4-a4)
// ERR-SKIP: spaq-opt: error: skip names no layer: conv0, fc9

func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}, %x4: tensor<1x1x2x4xf32> {onnx.name = "image"},
                %wx: tensor<4x8xf32> {onnx.name = "wx"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %wc = onnx.Initializer "conv1.weight" : tensor<2x1x1x1xf32>
  %c = onnx.Conv(%x4, %wc) {kernel_shape = array<i64: 1, 1>, onnx.node = "conv1"} : (tensor<1x1x2x4xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x2x4xf32>
  %wc2 = onnx.Initializer "conv2.weight" : tensor<2x1x2x2xf32>
  %c2 = onnx.Conv(%x4, %wc2) {kernel_shape = array<i64: 2, 2>, onnx.node = "conv2"} : (tensor<1x1x2x4xf32>, tensor<2x1x2x2xf32>) -> tensor<1x2x1x3xf32>
  %w1 = onnx.Initializer "fc1.weight" : tensor<4x8xf32>
  %y1 = onnx.Gemm(%x, %w1) {transB = 1 : i64, onnx.node = "fc1"} : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  %w2 = onnx.Initializer "fc2.weight" : tensor<2x4xf32>
  %y2 = onnx.Gemm(%y1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<1:4>}} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  %r1 = onnx.Relu(%y1) : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %w5 = onnx.Initializer "fc5.weight" : tensor<2x4xf32>
  %y5 = onnx.Gemm(%r1, %w5) {transB = 1 : i64, onnx.node = "fc5"} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  %w3 = onnx.Initializer "fc3.weight" : tensor<8x4xf32>
  %y3 = onnx.Gemm(%x, %w3) {onnx.node = "fc3"} : (tensor<1x8xf32>, tensor<8x4xf32>) -> tensor<1x4xf32>
  %y4 = onnx.Gemm(%x, %wx) {transB = 1 : i64, onnx.node = "fc4"} : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  func.return %y2 : tensor<1x2xf32>
}

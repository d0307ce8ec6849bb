// The file is chunks separated by `// -----`, compiled one at a time: awk prints chunk n.
// (Not --split-input-file: a pass error in one chunk ends the whole run.)
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p prune-magnitude | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"}' | filecheck %s --check-prefix=NUM
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p prune-magnitude | filecheck %s --check-prefix=BLOCK
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | not spaq-opt -p prune-magnitude 2>&1 | filecheck %s --check-prefix=ERR-CONST

// fc1 asks for 2:4: its weight is pruned into a new initializer `<w>.nm2_4` and packed, so
// the encoding is in the operand's type. fc2 asks for no sparsity and is left alone.
// CHECK-LABEL: func.func @main
// CHECK:       %[[P:[^ ]+]] = onnx.Initializer "fc1.weight.nm2_4" : tensor<4x8xf32>
// CHECK-NEXT:  %[[S:[^ ]+]] = sparse.pack %[[P]] : tensor<4x8xf32> -> tensor<4x8xf32, #sparse.nm<2:4>>
// CHECK-NEXT:  %[[Y1:[^ ]+]] = onnx.Gemm(%x, %[[S]], %b1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.nm<2:4>, {{.*}}}} : (tensor<1x8xf32>, tensor<4x8xf32, #sparse.nm<2:4>>, tensor<4xf32>) -> tensor<1x4xf32>
// CHECK:       onnx.Gemm(%r1, %w2) {transB = 1 : i64, onnx.node = "fc2", {{.*}}} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
// CHECK-NOT:   sparse.pack
// CHECK-NOT:   nm2_4

// The pruned values, seen through quantize: calibration runs the graph (sparse.pack checks
// the 2:4 pattern holds) and fc1's requantize scale is s_x * s_w[c] / s_y with
// s_y = max relu(x . W^T + b) / 127 over the samples. Pruned (ties keep the lower index),
// that max is 5.625, so scale[0] = 0.01 * (4 / 127) / (5.625 / 127) = 0.00711111...;
// with the dense weight it would be 4.02, with ties keeping the higher index 4.875.
// NUM:       %[[W:[^ ]+]] = quant.quantize %{{[^ ]+}} {scale = array<f32: 0.0314960629, 0.0236220472, 0.0157480314, 0.00629921257>, axis = 0 : i64} : tensor<4x8xf32, #sparse.nm<2:4>> -> tensor<4x8x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
// NUM:       quant.gemm %x.q, %[[W]], %{{[^ ]+}} {{{.*}}} : (tensor<1x8x!quant.q<si8:f32>>, tensor<4x8x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>, tensor<4xi32>) -> tensor<1x4xi32>
// NUM-NEXT:  quant.requantize %{{[^ ]+}} {scale = array<f64: 0.0071111109778219843, 0.0053333332333664885, 0.0035555554889109922, 0.0014222221955643968>, axis = 1 : i64} : tensor<1x4xi32> -> tensor<1x4x!quant.q<si8:f32>>
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %w1 = onnx.Initializer "fc1.weight" = dense<[[1.0, -2.0, 3.0, -4.0, 0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 1.0, 0.0, -1.0, 2.0, -3.0, 0.25], [1.0, 1.0, 1.0, 1.0, 2.0, -2.0, 2.0, -2.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]> : tensor<4x8xf32> : tensor<4x8xf32>
  %b1 = onnx.Initializer "fc1.bias" = dense<[0.0, 0.5, -0.5, 1.0]> : tensor<4xf32> : tensor<4xf32>
  %y1 = onnx.Gemm(%x, %w1, %b1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x8xf32>, tensor<4x8xf32>, tensor<4xf32>) -> tensor<1x4xf32>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu1"} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %w2 = onnx.Initializer "fc2.weight" = dense<[[1.0, -1.0, 0.5, 2.0], [0.25, 0.5, -0.75, 1.0]]> : tensor<2x4xf32> : tensor<2x4xf32>
  %y2 = onnx.Gemm(%r1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  func.return %y2 : tensor<1x2xf32>
}

// -----

// Block sparsity keeps the ⌈density · blocks⌉ blocks of the largest L1 norm: fc5's [4, 8]
// weight has two 4x4 blocks, |left| = 8 < |right| = 16, density 0.5 keeps the right one.
// Unstructured sparsity keeps the ⌈density · size⌉ largest magnitudes: fc6 keeps 3 of 8.
// (The values are in tests/compiler/test_compiled_gemm_modes.py: printed IR carries no weights.)
// BLOCK:      %[[B:[^ ]+]] = onnx.Initializer "fc5.weight.block4x4" : tensor<4x8xf32>
// BLOCK-NEXT: sparse.pack %[[B]] : tensor<4x8xf32> -> tensor<4x8xf32, #sparse.block<4x4>>
// BLOCK:      %[[U:[^ ]+]] = onnx.Initializer "fc6.weight.unstructured" : tensor<2x4xf32>
// BLOCK-NEXT: sparse.pack %[[U]] : tensor<2x4xf32> -> tensor<2x4xf32, #sparse.unstructured<csr>>
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x4xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc5.weight" = dense<[[0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]]> : tensor<4x8xf32> : tensor<4x8xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc5", spaq.compression = {sparsity = #sparse.block<4x4>, density = 5.000000e-01 : f32}} : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  %w6 = onnx.Initializer "fc6.weight" = dense<[[1.0, -5.0, 2.0, 4.0], [0.5, -1.0, 0.25, 3.0]]> : tensor<2x4xf32> : tensor<2x4xf32>
  %z = onnx.Gemm(%y, %w6) {transB = 1 : i64, onnx.node = "fc6", spaq.compression = {sparsity = #sparse.unstructured<csr>, density = 3.750000e-01 : f32}} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x4xf32>
}

// -----

// ERR-CONST: spaq-opt: error: layer 'fc6': sparsity needs a constant weight
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}, %w: tensor<4x8xf32> {onnx.name = "w"}) -> (tensor<1x4xf32> {onnx.name = "out"}) {
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc6", spaq.compression = {sparsity = #sparse.nm<2:4>}} : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  func.return %y : tensor<1x4xf32>
}

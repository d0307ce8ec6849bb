// The file is chunks separated by `// -----`, compiled one at a time: awk prints chunk n.
// The inputs carry `sparrow.tiles` as tile-layers{target=edge} writes them (or a user pins them).
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'allocate-scratchpad{target=edge}' | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p 'allocate-scratchpad{target=edge}' | filecheck %s --check-prefix=FP32
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | not spaq-opt -p 'allocate-scratchpad{target=edge}' 2>&1 | filecheck %s --check-prefix=ERR-OVERFLOW
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | spaq-opt -p 'allocate-scratchpad{target=datacenter}' | filecheck %s --check-prefix=DC
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | not spaq-opt -p allocate-scratchpad 2>&1 | filecheck %s --check-prefix=ERR-NOTILES

// Each layer starts from empty scratchpads; regions are bump-allocated per buffer in the
// order out, wgt, acc, param, in, cols, meta, each 64-byte aligned.
// - input quantize: in = 64 f32 (256 B) at 0, out after it; its scale at PARAM 0;
// - conv1: out = 64 pixels * 8 channels int8 = 512 B at 0, in = 64 B at 512, im2col
//   columns (64 * 9 int8) at 576; weights, accumulator, parameters at 0 of their own buffers;
// - pool1: in = 512 B at 0, out at 512; flatten moves no data and gets nothing;
// - fc1 (2:4, dequantized to f32): out = 16 * 4 B at 0, in at 64, metadata at META 0;
// - softmax: in = 16 f32 (64 B) at 0, out at 64.
// CHECK-LABEL: func.func @main
// CHECK:      quant.quantize %x {sparrow.sram = {in = 0 : i64, out = 256 : i64, param = 0 : i64}, scale = array<f32: 1.000000e-02>}
// CHECK:      quant.conv %xq, %wcq, %bc {onnx.node = "conv1", sparrow.tiles = {m = 64 : i64, n = 8 : i64, k = 9 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 512 : i64, cols = 576 : i64}
// CHECK:      onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, onnx.node = "pool1", sparrow.sram = {in = 0 : i64, out = 512 : i64}}
// CHECK-NEXT: onnx.Flatten(%p) {axis = 1 : i64, onnx.node = "flatten"} :
// CHECK:      quant.gemm %f, %w1q {onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 16 : i64, k = 128 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64, meta = 0 : i64}}
// CHECK-NEXT: quant.dequantize %a1 {scale = array<f32: 1.000000e-03>} : tensor<1x16xi32> -> tensor<1x16xf32>{{$}}
// CHECK-NEXT: onnx.Softmax(%y1) {axis = 1 : i64, onnx.node = "softmax", sparrow.sram = {in = 0 : i64, out = 64 : i64}}
func.func @main(%x: tensor<1x1x8x8xf32> {onnx.name = "input"}) -> (tensor<1x16xf32> {onnx.name = "out"}) {
  %wc = onnx.Initializer "conv1.weight" : tensor<8x1x3x3xf32>
  %bc = onnx.Initializer "conv1.bias.i32" : tensor<8xi32>
  %xq = quant.quantize %x {scale = array<f32: 0.01>} : tensor<1x1x8x8xf32> -> tensor<1x1x8x8x!quant.q<si8:f32>>
  %wcq = quant.quantize %wc {scale = array<f32: 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01>, axis = 0 : i64} : tensor<8x1x3x3xf32> -> tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>>
  %acc = quant.conv %xq, %wcq, %bc {onnx.node = "conv1", sparrow.tiles = {m = 64 : i64, n = 8 : i64, k = 9 : i64}, dilations = array<i64: 1, 1>, group = 1 : i64, kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x1x8x8x!quant.q<si8:f32>>, tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<1x8x8x8xi32>
  %c = quant.requantize %acc {scale = array<f64: 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5>, axis = 1 : i64} : tensor<1x8x8x8xi32> -> tensor<1x8x8x8x!quant.q<si8:f32>>
  %r = onnx.Relu(%c) {onnx.node = "relu1"} : (tensor<1x8x8x8x!quant.q<si8:f32>>) -> tensor<1x8x8x8x!quant.q<si8:f32>>
  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, onnx.node = "pool1"} : (tensor<1x8x8x8x!quant.q<si8:f32>>) -> tensor<1x8x4x4x!quant.q<si8:f32>>
  %f = onnx.Flatten(%p) {axis = 1 : i64, onnx.node = "flatten"} : (tensor<1x8x4x4x!quant.q<si8:f32>>) -> tensor<1x128x!quant.q<si8:f32>>
  %w1 = onnx.Initializer "fc1.weight.nm2_4" : tensor<16x128xf32>
  %w1s = sparse.pack %w1 : tensor<16x128xf32> -> tensor<16x128xf32, #sparse.nm<2:4>>
  %w1q = quant.quantize %w1s {scale = array<f32: 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01>, axis = 0 : i64} : tensor<16x128xf32, #sparse.nm<2:4>> -> tensor<16x128x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
  %a1 = quant.gemm %f, %w1q {onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 16 : i64, k = 128 : i64}} : (tensor<1x128x!quant.q<si8:f32>>, tensor<16x128x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>) -> tensor<1x16xi32>
  %y1 = quant.dequantize %a1 {scale = array<f32: 0.001>} : tensor<1x16xi32> -> tensor<1x16xf32>
  %sm = onnx.Softmax(%y1) {axis = 1 : i64, onnx.node = "softmax"} : (tensor<1x16xf32>) -> tensor<1x16xf32>
  func.return %sm : tensor<1x16xf32>
}

// -----

// Regions are sized by the tiles, not the layer: fc3 [10, 1024] in tiles of n = 8 has an
// out tile of 8 * 4 = 32 B, so its input starts at the next 64-byte boundary. fc2's input
// (1024 f32 = 4 KiB) follows its 256-column out tile (1 KiB).
// FP32: onnx.node = "fc2", sparrow.tiles = {m = 1 : i64, n = 256 : i64, k = 32 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 1024 : i64}}
// FP32: onnx.node = "fc3", sparrow.tiles = {m = 1 : i64, n = 8 : i64, k = 1024 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64}}
func.func @main(%x: tensor<1x32xf32> {onnx.name = "input"}) -> (tensor<1x10xf32> {onnx.name = "out"}) {
  %w2 = onnx.Initializer "fc2.weight" : tensor<1024x32xf32>
  %y2 = onnx.Gemm(%x, %w2) {transB = 1 : i64, onnx.node = "fc2", sparrow.tiles = {m = 1 : i64, n = 256 : i64, k = 32 : i64}} : (tensor<1x32xf32>, tensor<1024x32xf32>) -> tensor<1x1024xf32>
  %w3 = onnx.Initializer "fc3.weight" : tensor<10x1024xf32>
  %y3 = onnx.Gemm(%y2, %w3) {transB = 1 : i64, onnx.node = "fc3", sparrow.tiles = {m = 1 : i64, n = 8 : i64, k = 1024 : i64}} : (tensor<1x1024xf32>, tensor<10x1024xf32>) -> tensor<1x10xf32>
  func.return %y3 : tensor<1x10xf32>
}

// -----

// A layer too big for the target: a [1024, 1024] fp32 weight taken whole is 4 MiB, edge's
// WGT scratchpad is 32 KiB. The error names the layer, the buffer and both sizes. The
// datacenter target (4 MiB WGT) takes it.
// ERR-OVERFLOW: spaq-opt: error: layer 'big' needs 4194304 bytes of WGT scratchpad, the target has 32768
// DC: onnx.node = "big", sparrow.tiles = {m = 1 : i64, n = 1024 : i64, k = 1024 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 4096 : i64}}
func.func @main(%x: tensor<1x1024xf32> {onnx.name = "input"}) -> (tensor<1x1024xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "big.weight" : tensor<1024x1024xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "big", sparrow.tiles = {m = 1 : i64, n = 1024 : i64, k = 1024 : i64}} : (tensor<1x1024xf32>, tensor<1024x1024xf32>) -> tensor<1x1024xf32>
  func.return %y : tensor<1x1024xf32>
}

// -----

// Without tiles (tile-layers not run) the pass says what is missing.
// ERR-NOTILES: spaq-opt: error: layer 'fc7' has no sparrow.tiles (run the pass that writes it first)
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x4xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc7.weight" : tensor<4x8xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc7"} : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
  func.return %y : tensor<1x4xf32>
}

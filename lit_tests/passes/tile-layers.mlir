// The file is chunks separated by `// -----`, compiled one at a time: awk prints chunk n.
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'tile-layers{target=edge}' | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p tile-layers | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'tile-layers{target=datacenter}' | filecheck %s --check-prefix=DC
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p 'tile-layers{target=edge}' | filecheck %s --check-prefix=INT8
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | not spaq-opt -p 'tile-layers{target=edge}' 2>&1 | filecheck %s --check-prefix=ERR-FIT
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | not spaq-opt -p 'tile-layers{target=tpu}' 2>&1 | filecheck %s --check-prefix=ERR-TARGET
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'tile-layers{target=datacenter}' | filecheck %s --check-prefix=TAIL
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'tile-layers{target=edge}' | filecheck %s --check-prefix=ROWS

// fp32 Gemms on edge (8x8 array; WGT 32 KiB, ACC 16 KiB, PARAM 4 KiB; edge is the default).
// Tiles are over N (multiples of 8) and K (multiples of 64), whole K first:
// - fc1 [32, 64] fits whole (8 KiB of weights);
// - fc2 [1024, 32]: 256 * 32 * 4 B = 32 KiB of weights is the most that fits: n = 256;
// - fc3 [10, 1024]: 10 rows of 4 KiB do not fit, 8 do: n = 8 (a last tile of 2), k whole;
// - a pinned choice (fc4) is kept; Relu and Softmax get no tiles.
// CHECK-LABEL: func.func @main
// CHECK:       onnx.Gemm(%x, %w1, %b1) {transB = 1 : i64, onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 32 : i64, k = 64 : i64}}
// CHECK-NEXT:  onnx.Relu(%y1) {onnx.node = "relu1"} :
// CHECK:       onnx.Gemm(%r1, %w2) {transB = 1 : i64, onnx.node = "fc2", sparrow.tiles = {m = 1 : i64, n = 256 : i64, k = 32 : i64}}
// CHECK:       onnx.Gemm(%y2, %w3) {transB = 1 : i64, onnx.node = "fc3", sparrow.tiles = {m = 1 : i64, n = 8 : i64, k = 1024 : i64}}
// CHECK:       onnx.Gemm(%y3, %w4) {transB = 1 : i64, onnx.node = "fc4", sparrow.tiles = {m = 1 : i64, n = 2 : i64, k = 64 : i64}}
// CHECK-NEXT:  onnx.Softmax(%y4) {axis = 1 : i64, onnx.node = "softmax"} :

// The datacenter target (64x64 array, MiBs of SRAM) takes every layer whole.
// DC: onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 32 : i64, k = 64 : i64}
// DC: onnx.node = "fc2", sparrow.tiles = {m = 1 : i64, n = 1024 : i64, k = 32 : i64}
// DC: onnx.node = "fc3", sparrow.tiles = {m = 1 : i64, n = 10 : i64, k = 1024 : i64}
// DC: onnx.node = "fc4", sparrow.tiles = {m = 1 : i64, n = 2 : i64, k = 64 : i64}

// ERR-TARGET: spaq-opt: error: unknown target 'tpu' (known: datacenter, edge{{.*}})
func.func @main(%x: tensor<1x64xf32> {onnx.name = "input"}) -> (tensor<1x10xf32> {onnx.name = "out"}) {
  %w1 = onnx.Initializer "fc1.weight" : tensor<32x64xf32>
  %b1 = onnx.Initializer "fc1.bias" : tensor<32xf32>
  %y1 = onnx.Gemm(%x, %w1, %b1) {transB = 1 : i64, onnx.node = "fc1"} : (tensor<1x64xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<1x32xf32>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu1"} : (tensor<1x32xf32>) -> tensor<1x32xf32>
  %w2 = onnx.Initializer "fc2.weight" : tensor<1024x32xf32>
  %y2 = onnx.Gemm(%r1, %w2) {transB = 1 : i64, onnx.node = "fc2"} : (tensor<1x32xf32>, tensor<1024x32xf32>) -> tensor<1x1024xf32>
  %w3 = onnx.Initializer "fc3.weight" : tensor<10x1024xf32>
  %y3 = onnx.Gemm(%y2, %w3) {transB = 1 : i64, onnx.node = "fc3"} : (tensor<1x1024xf32>, tensor<10x1024xf32>) -> tensor<1x10xf32>
  %w4 = onnx.Initializer "fc4.weight" : tensor<10x10xf32>
  %y4 = onnx.Gemm(%y3, %w4) {transB = 1 : i64, onnx.node = "fc4", sparrow.tiles = {m = 1 : i64, n = 2 : i64, k = 64 : i64}} : (tensor<1x10xf32>, tensor<10x10xf32>) -> tensor<1x10xf32>
  %sm = onnx.Softmax(%y4) {axis = 1 : i64, onnx.node = "softmax"} : (tensor<1x10xf32>) -> tensor<1x10xf32>
  func.return %sm : tensor<1x10xf32>
}

// -----

// int8: conv1 (im2col rows kept whole: m = 8 * 8 pixels, k = 1 * 3 * 3) and a 2:4 fc1.
// The quant.quantize of the input is a layer of its own, but has nothing to tile.
// INT8:      quant.quantize %x {scale = array<f32: 1.000000e-02>} : tensor<1x1x8x8xf32> -> tensor<1x1x8x8x!quant.q<si8:f32>>{{$}}
// INT8:      quant.conv %xq, %wcq, %bc {onnx.node = "conv1", sparrow.tiles = {m = 64 : i64, n = 8 : i64, k = 9 : i64}, dilations
// INT8:      quant.gemm %f, %w1q {onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 16 : i64, k = 128 : i64}}
// INT8-NOT:  sparrow.tiles
func.func @main(%x: tensor<1x1x8x8xf32> {onnx.name = "input"}) -> (tensor<1x16xf32> {onnx.name = "out"}) {
  %wc = onnx.Initializer "conv1.weight" : tensor<8x1x3x3xf32>
  %bc = onnx.Initializer "conv1.bias.i32" : tensor<8xi32>
  %xq = quant.quantize %x {scale = array<f32: 0.01>} : tensor<1x1x8x8xf32> -> tensor<1x1x8x8x!quant.q<si8:f32>>
  %wcq = quant.quantize %wc {scale = array<f32: 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01>, axis = 0 : i64} : tensor<8x1x3x3xf32> -> tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>>
  %acc = quant.conv %xq, %wcq, %bc {onnx.node = "conv1", dilations = array<i64: 1, 1>, group = 1 : i64, kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x1x8x8x!quant.q<si8:f32>>, tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<1x8x8x8xi32>
  %c = quant.requantize %acc {scale = array<f64: 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5>, axis = 1 : i64} : tensor<1x8x8x8xi32> -> tensor<1x8x8x8x!quant.q<si8:f32>>
  %r = onnx.Relu(%c) {onnx.node = "relu1"} : (tensor<1x8x8x8x!quant.q<si8:f32>>) -> tensor<1x8x8x8x!quant.q<si8:f32>>
  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, onnx.node = "pool1"} : (tensor<1x8x8x8x!quant.q<si8:f32>>) -> tensor<1x8x4x4x!quant.q<si8:f32>>
  %f = onnx.Flatten(%p) {axis = 1 : i64, onnx.node = "flatten"} : (tensor<1x8x4x4x!quant.q<si8:f32>>) -> tensor<1x128x!quant.q<si8:f32>>
  %w1 = onnx.Initializer "fc1.weight.nm2_4" : tensor<16x128xf32>
  %w1s = sparse.pack %w1 : tensor<16x128xf32> -> tensor<16x128xf32, #sparse.nm<2:4>>
  %w1q = quant.quantize %w1s {scale = array<f32: 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01>, axis = 0 : i64} : tensor<16x128xf32, #sparse.nm<2:4>> -> tensor<16x128x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
  %a1 = quant.gemm %f, %w1q {onnx.node = "fc1"} : (tensor<1x128x!quant.q<si8:f32>>, tensor<16x128x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>) -> tensor<1x16xi32>
  %y1 = quant.dequantize %a1 {scale = array<f32: 0.001>} : tensor<1x16xi32> -> tensor<1x16xf32>
  %sm = onnx.Softmax(%y1) {axis = 1 : i64, onnx.node = "softmax"} : (tensor<1x16xf32>) -> tensor<1x16xf32>
  func.return %sm : tensor<1x16xf32>
}

// -----

// A conv is tiled down to one output row (m = 4000 pixels: its 3 input rows 48000 B, its
// im2col columns 144000 B and its output 128000 B), which still cannot fit edge's 32 KiB ACT:
// the error names the layer and the buffer.
// ERR-FIT: spaq-opt: error: layer 'conv9' needs 320000 bytes of ACT scratchpad, the target has 32768
func.func @main(%x: tensor<1x1x8x4000xf32> {onnx.name = "input"}) -> (tensor<1x8x8x4000xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "conv9.weight" : tensor<8x1x3x3xf32>
  %y = onnx.Conv(%x, %w) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, onnx.node = "conv9"} : (tensor<1x1x8x4000xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x8x4000xf32>
  func.return %y : tensor<1x8x8x4000xf32>
}

// -----

// A vector region right after the matrix layer whose result it takes runs as that layer's
// tail when both fit whole (`tail = 1`: the [64, 256] result never goes to DRAM, and the
// region gets no tiles of its own). On edge the result does not fit ACT whole: fc is tiled
// over N, and the GELU region over rows (32 rows of 256 f32 = the 32 KiB of ACT).
// TAIL: onnx.node = "fc", sparrow.tiles = {m = 64 : i64, n = 256 : i64, k = 32 : i64, tail = 1 : i64}}
// TAIL: onnx.Gelu(%y) {onnx.node = "gelu"} :
// ROWS: onnx.node = "fc", sparrow.tiles = {m = 64 : i64, n = 64 : i64, k = 32 : i64}}
// ROWS: onnx.Gelu(%y) {onnx.node = "gelu", sparrow.tiles = {rows = 32 : i64}}
func.func @main(%x: tensor<64x32xf32> {onnx.name = "input"}) -> (tensor<64x256xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc.weight" : tensor<256x32xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc"} : (tensor<64x32xf32>, tensor<256x32xf32>) -> tensor<64x256xf32>
  %g = onnx.Gelu(%y) {onnx.node = "gelu"} : (tensor<64x256xf32>) -> tensor<64x256xf32>
  func.return %g : tensor<64x256xf32>
}

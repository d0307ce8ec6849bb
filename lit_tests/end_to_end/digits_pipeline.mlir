// The bundled digits CNN through the whole pipeline (2:4 + int8 on edge), one spaq-opt run:
// every pass's output is checked from --print-ir-after-all (stderr); the program from -t sparrow-asm.
// RUN: spaq-opt %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 -p 'onnx-canonicalize,choose-compression{sparsity="2:4" precision=int8},prune-magnitude,quantize{calibration="%examples/digits/digits_calib.npz"},tile-layers{target=edge},allocate-scratchpad{target=edge},lower-to-sparrow{target=edge}' --print-ir-after-all 2>&1 >/dev/null | filecheck %s
// RUN: spaq-opt %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 -p 'onnx-canonicalize,choose-compression{sparsity="2:4" precision=int8},prune-magnitude,quantize{calibration="%examples/digits/digits_calib.npz"},tile-layers{target=edge},allocate-scratchpad{target=edge},lower-to-sparrow{target=edge}' -t sparrow-asm | filecheck %s --check-prefix=ASM

// The imported graph: conv -> BatchNormalization -> relu -> pool (x2), flatten, fc1, relu, fc2, softmax.
// CHECK-LABEL: // -----// IR before the first pass //----- //
// CHECK:       func.func @main(%input: tensor<1x1x8x8xf32> {onnx.name = "input"}) -> (tensor<1x10xf32> {onnx.name = "probs"})
// CHECK:       onnx.BatchNormalization(%conv1, {{.*}}onnx.node = "bn1"
// CHECK:       onnx.BatchNormalization(%conv2, {{.*}}onnx.node = "bn2"
// CHECK:       onnx.Softmax

// BatchNormalization folded into both convs; no Gemm needed normalising (already transB = 1).
// CHECK-LABEL: // -----// IR after onnx-canonicalize //----- //
// CHECK-NOT:   BatchNormalization
// CHECK:       %[[W1:[^ ]+]] = onnx.Initializer "conv1.weight.bnfold" : tensor<8x1x3x3xf32>
// CHECK-NEXT:  %[[B1:[^ ]+]] = onnx.Initializer "conv1.bias.bnfold" : tensor<8xf32>
// CHECK-NEXT:  onnx.Conv(%input, %[[W1]], %[[B1]]) {{.*}}onnx.node = "conv1"
// CHECK-NEXT:  onnx.Relu
// CHECK:       onnx.Initializer "conv2.weight.bnfold" : tensor<16x8x3x3xf32>
// CHECK-NOT:   BatchNormalization
// CHECK:       onnx.Gemm(%flatten, %fc1.weight, %fc1.bias)
// CHECK-NOT:   BatchNormalization
// CHECK-NOT:   .nk"

// conv1's reduction (1 * 3 * 3 = 9) is not whole groups of 4: int8 only; the rest 2:4 + int8.
// CHECK-LABEL: // -----// IR after choose-compression //----- //
// CHECK:       onnx.node = "conv1", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}}
// CHECK:       onnx.node = "conv2", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}}
// CHECK:       onnx.node = "fc1", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}}
// CHECK:       onnx.node = "fc2", spaq.compression = {sparsity = #sparse.nm<2:4>, weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}}

// CHECK-LABEL: // -----// IR after prune-magnitude //----- //
// CHECK-NOT:   conv1.weight.bnfold.nm2_4
// CHECK:       onnx.Initializer "conv2.weight.bnfold.nm2_4" : tensor<16x8x3x3xf32>
// CHECK-NEXT:  sparse.pack {{.*}} : tensor<16x8x3x3xf32> -> tensor<16x8x3x3xf32, #sparse.nm<2:4>>
// CHECK:       onnx.Initializer "fc1.weight.nm2_4" : tensor<32x64xf32>
// CHECK-NEXT:  sparse.pack {{.*}} : tensor<32x64xf32> -> tensor<32x64xf32, #sparse.nm<2:4>>
// CHECK:       onnx.Initializer "fc2.weight.nm2_4" : tensor<10x32xf32>
// CHECK-NEXT:  sparse.pack {{.*}} : tensor<10x32xf32> -> tensor<10x32xf32, #sparse.nm<2:4>>

// Pixels are in [0, 1]: s_x = 1 / 127. Every layer requantizes to int8 except fc2, whose
// consumer (Softmax) needs f32. The sparse encoding stays in the quantized weight types.
// CHECK-LABEL: // -----// IR after quantize //----- //
// CHECK:       %input.q = quant.quantize %input {scale = array<f32: 0.00787401572>} : tensor<1x1x8x8xf32> -> tensor<1x1x8x8x!quant.q<si8:f32>>
// CHECK:       quant.conv %input.q, {{.*}} -> tensor<1x8x8x8xi32>
// CHECK-NEXT:  quant.requantize {{.*}} : tensor<1x8x8x8xi32> -> tensor<1x8x8x8x!quant.q<si8:f32>>
// CHECK:       onnx.MaxPool{{.*}}: (tensor<1x8x8x8x!quant.q<si8:f32>>) -> tensor<1x8x4x4x!quant.q<si8:f32>>
// CHECK:       quant.conv %pool1, {{.*}}tensor<16x8x3x3x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>{{.*}} -> tensor<1x16x4x4xi32>
// CHECK-NEXT:  quant.requantize
// CHECK:       onnx.Flatten{{.*}} -> tensor<1x64x!quant.q<si8:f32>>
// CHECK:       quant.gemm %flatten, {{.*}} -> tensor<1x32xi32>
// CHECK-NEXT:  quant.requantize {{.*}} -> tensor<1x32x!quant.q<si8:f32>>
// CHECK:       quant.gemm %relu3, {{.*}}tensor<10x32x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>{{.*}} -> tensor<1x10xi32>
// CHECK-NEXT:  %fc2 = quant.dequantize {{.*}} : tensor<1x10xi32> -> tensor<1x10xf32>
// CHECK-NEXT:  onnx.Softmax(%fc2) {{.*}} : (tensor<1x10xf32>) -> tensor<1x10xf32>
// CHECK-NOT:   onnx.Conv
// CHECK-NOT:   onnx.Gemm

// CHECK-LABEL: // -----// IR after tile-layers //----- //
// CHECK:       onnx.node = "conv1", {{.*}}sparrow.tiles = {m = 64 : i64, n = 8 : i64, k = 9 : i64}
// CHECK:       onnx.node = "conv2", {{.*}}sparrow.tiles = {m = 16 : i64, n = 16 : i64, k = 72 : i64}
// CHECK:       onnx.node = "fc1", {{.*}}sparrow.tiles = {m = 1 : i64, n = 32 : i64, k = 64 : i64}
// CHECK:       onnx.node = "fc2", {{.*}}sparrow.tiles = {m = 1 : i64, n = 10 : i64, k = 32 : i64}
// CHECK-NOT:   sparrow.sram

// CHECK-LABEL: // -----// IR after allocate-scratchpad //----- //
// CHECK:       quant.quantize %input {sparrow.sram = {in = 0 : i64, out = 256 : i64, param = 0 : i64}
// CHECK:       onnx.node = "conv1", {{.*}}sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 512 : i64, cols = 576 : i64}
// CHECK:       onnx.node = "pool1", sparrow.sram = {in = 0 : i64, out = 512 : i64}
// CHECK:       onnx.node = "conv2", {{.*}}sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 256 : i64, cols = 384 : i64, meta = 0 : i64}
// CHECK:       onnx.node = "softmax", sparrow.sram = {in = 0 : i64, out = 64 : i64}

// One segment per tensor (the 2:4 weights as values + metadata), then the instructions.
// CHECK-LABEL: // -----// IR after lower-to-sparrow //----- //
// CHECK-NEXT:  builtin.module {
// CHECK-NEXT:    func.func @main() {
// CHECK-NEXT:      sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 1, 8, 8]
// CHECK:           sparrow.segment "conv1.wgt" kind=values dtype=i8 addr={{[0-9]+}} shape=[8, 9]
// CHECK-NOT:       sparrow.segment "conv1.meta"
// CHECK:           sparrow.segment "conv2.wgt" kind=values dtype=i8 addr={{[0-9]+}} shape=[16, 36]
// CHECK-NEXT:      sparrow.segment "conv2.meta" kind=metadata dtype=u2 addr={{[0-9]+}} shape=[16, 36]
// CHECK:           sparrow.segment "fc1.wgt" kind=values dtype=i8 addr={{[0-9]+}} shape=[32, 32]
// CHECK-NEXT:      sparrow.segment "fc1.meta" kind=metadata dtype=u2 addr={{[0-9]+}} shape=[32, 32]
// CHECK:           sparrow.segment "probs" kind=output dtype=f32 addr={{[0-9]+}} shape=[1, 10]
// CHECK-NEXT:      sparrow.load buf=param dtype=f32 {{.*}} {layer = "input.q"}
// CHECK:           sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=576 wgt=0 m=64 k=9 n=8 accumulate=0 {layer = "conv1"}
// CHECK:           sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=384 wgt=0 m=16 k=72 n=16 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "conv2"}
// CHECK:           sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=64 n=32 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc1"}
// CHECK:           sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=32 n=10 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc2"}
// CHECK:           sparrow.epilogue mode=dequant odtype=f32 bias=1 relu=0 {{.*}} {layer = "fc2"}
// CHECK:           sparrow.softmax src=0 dst=64 rows=1 cols=10 {layer = "softmax"}
// CHECK-NEXT:      sparrow.store buf=act dtype=f32 {{.*}} {layer = "softmax"}
// CHECK-NEXT:      sparrow.halt
// CHECK-NEXT:      func.return
// CHECK-NOT:       onnx.
// CHECK-NOT:       quant.

// ASM:      # Sparrow program (docs/isa.md)
// ASM-NEXT: # layer input.q
// ASM:      # layer conv1
// ASM:      im2col dtype=i8 {{.*}} c=1 h=8 w=8 kh=3 kw=3 sh=1 sw=1 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1
// ASM:      epilogue mode=requant odtype=i8 bias=1 relu=1 {{.*}} rows=64 cols=8 zp=0
// ASM:      # layer pool1
// ASM:      # layer conv2
// ASM:      spgemm {{.*}} m=16 k=72 n=16 {{.*}} nm_n=2 nm_m=4
// ASM:      # layer pool2
// ASM:      # layer fc1
// ASM:      # layer fc2
// ASM:      # layer softmax
// ASM-NEXT: load buf=act dtype=f32
// ASM-NEXT: softmax src=0 dst=64 rows=1 cols=10
// ASM-NEXT: store buf=act dtype=f32
// ASM-NEXT: halt

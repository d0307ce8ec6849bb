// The file is chunks separated by `// -----`, compiled one at a time: awk prints chunk n.
// The inputs are the IR after quantize, tile-layers and allocate-scratchpad (`sparrow.tiles`,
// `sparrow.sram` as those passes write them), with every weight inline.
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'lower-to-sparrow{target=edge}' | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p lower-to-sparrow -t sparrow-asm | filecheck %s --check-prefix=ASM
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p lower-to-sparrow | filecheck %s --check-prefix=TILED
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | spaq-opt -p lower-to-sparrow | filecheck %s --check-prefix=CONV
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | not spaq-opt -p lower-to-sparrow 2>&1 | filecheck %s --check-prefix=ERR-OP
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | not spaq-opt -p 'lower-to-sparrow{target=edge}' 2>&1 | filecheck %s --check-prefix=ERR-NM
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | spaq-opt -p 'lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=DC
// RUN: awk '/^\/\/ -----$/{i++; next} i==5' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=EMB
// RUN: awk '/^\/\/ -----$/{i++; next} i==6' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=ATT
// RUN: awk '/^\/\/ -----$/{i++; next} i==7' %s | spaq-opt -p 'choose-compression{precision=int8-dynamic},quantize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=W8A8

// int8: the input is quantized on the machine (layer xq), fc1 is a 2:4 sparse GEMM with a
// requantizing, ReLU-fused epilogue, fc2 a dense GEMM dequantized to f32 (the output).
// @main loses its arguments: the program is segments (DRAM, 64-byte aligned, in order of
// use) and one op per instruction tagged with its layer, ending in halt.
// - fc1's [4, 8] 2:4 weight is stored as [4, 4] kept values + [4, 4] 2-bit indices (one
//   byte per row); its requantize parameters are one [3, 4] i32 block (bias, multiplier, shift);
// - fc2's dequantize parameters are an i32 bias row and an f32 scale row, loaded back to back.
// CHECK-LABEL: func.func @main() {
// CHECK-NEXT: sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 8]
// CHECK-NEXT: sparrow.segment "xq.scale" kind=scales dtype=f32 addr=64 shape=[1]
// CHECK-NEXT: sparrow.segment "xq" kind=activation dtype=i8 addr=128 shape=[1, 8]
// CHECK-NEXT: sparrow.segment "fc1.wgt" kind=values dtype=i8 addr=192 shape=[4, 4]
// CHECK-NEXT: sparrow.segment "fc1.meta" kind=metadata dtype=u2 addr=256 shape=[4, 4]
// CHECK-NEXT: sparrow.segment "fc1.requant" kind=scales dtype=i32 addr=320 shape=[3, 4]
// CHECK-NEXT: sparrow.segment "fc1" kind=activation dtype=i8 addr=384 shape=[1, 4]
// CHECK-NEXT: sparrow.segment "fc2.wgt" kind=values dtype=i8 addr=448 shape=[2, 4]
// CHECK-NEXT: sparrow.segment "fc2.bias" kind=scales dtype=i32 addr=512 shape=[1, 2]
// CHECK-NEXT: sparrow.segment "fc2.scale" kind=scales dtype=f32 addr=576 shape=[1, 2]
// CHECK-NEXT: sparrow.segment "out" kind=output dtype=f32 addr=640 shape=[1, 2]
// CHECK-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=64 rows=1 cols=1 rstride=1 cstride=1 {layer = "xq"}
// CHECK-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 {layer = "xq"}
// CHECK-NEXT: sparrow.quant odtype=i8 src=0 dst=64 param=0 rows=1 cols=8 {layer = "xq"}
// CHECK-NEXT: sparrow.store buf=act dtype=i8 sp=64 dram=128 rows=1 cols=8 rstride=8 cstride=1 {layer = "xq"}
// CHECK-NEXT: sparrow.load buf=act dtype=i8 sp=64 dram=128 rows=1 cols=8 rstride=8 cstride=1 {layer = "fc1"}
// CHECK-NEXT: sparrow.load buf=wgt dtype=i8 sp=0 dram=192 rows=4 cols=4 rstride=4 cstride=1 {layer = "fc1"}
// CHECK-NEXT: sparrow.load buf=meta dtype=u2 sp=0 dram=256 rows=4 cols=4 rstride=4 cstride=1 {layer = "fc1"}
// CHECK-NEXT: sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=8 n=4 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc1"}
// CHECK-NEXT: sparrow.load buf=param dtype=i32 sp=0 dram=320 rows=3 cols=4 rstride=4 cstride=1 {layer = "fc1"}
// CHECK-NEXT: sparrow.epilogue mode=requant odtype=i8 bias=1 relu=1 src=0 dst=0 param=0 rows=1 cols=4 zp=0 {layer = "fc1"}
// CHECK-NEXT: sparrow.store buf=act dtype=i8 sp=0 dram=384 rows=1 cols=4 rstride=4 cstride=1 {layer = "fc1"}
// CHECK-NEXT: sparrow.load buf=act dtype=i8 sp=64 dram=384 rows=1 cols=4 rstride=4 cstride=1 {layer = "fc2"}
// CHECK-NEXT: sparrow.load buf=wgt dtype=i8 sp=0 dram=448 rows=2 cols=4 rstride=4 cstride=1 {layer = "fc2"}
// CHECK-NEXT: sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=4 n=2 accumulate=0 {layer = "fc2"}
// CHECK-NEXT: sparrow.load buf=param dtype=i32 sp=0 dram=512 rows=1 cols=2 rstride=2 cstride=1 {layer = "fc2"}
// CHECK-NEXT: sparrow.load buf=param dtype=f32 sp=8 dram=576 rows=1 cols=2 rstride=2 cstride=1 {layer = "fc2"}
// CHECK-NEXT: sparrow.epilogue mode=dequant odtype=f32 bias=1 relu=0 src=0 dst=0 param=0 rows=1 cols=2 zp=0 {layer = "fc2"}
// CHECK-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=640 rows=1 cols=2 rstride=2 cstride=1 {layer = "fc2"}
// CHECK-NEXT: sparrow.halt
// CHECK-NEXT: func.return
// CHECK-NOT:  onnx.
// CHECK-NOT:  quant.

// The same program as assembly, one comment line per layer.
// ASM:      # Sparrow program (docs/isa.md)
// ASM-NEXT: # layer xq
// ASM-NEXT: load buf=param dtype=f32 sp=0 dram=64 rows=1 cols=1 rstride=1 cstride=1
// ASM-NEXT: load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1
// ASM-NEXT: quant odtype=i8 src=0 dst=64 param=0 rows=1 cols=8
// ASM-NEXT: store buf=act dtype=i8 sp=64 dram=128 rows=1 cols=8 rstride=8 cstride=1
// ASM-NEXT: # layer fc1
// ASM-NEXT: load buf=act dtype=i8 sp=64 dram=128 rows=1 cols=8 rstride=8 cstride=1
// ASM-NEXT: load buf=wgt dtype=i8 sp=0 dram=192 rows=4 cols=4 rstride=4 cstride=1
// ASM-NEXT: load buf=meta dtype=u2 sp=0 dram=256 rows=4 cols=4 rstride=4 cstride=1
// ASM-NEXT: spgemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=8 n=4 accumulate=0 meta=0 nm_n=2 nm_m=4
// ASM-NEXT: load buf=param dtype=i32 sp=0 dram=320 rows=3 cols=4 rstride=4 cstride=1
// ASM-NEXT: epilogue mode=requant odtype=i8 bias=1 relu=1 src=0 dst=0 param=0 rows=1 cols=4 zp=0
// ASM-NEXT: store buf=act dtype=i8 sp=0 dram=384 rows=1 cols=4 rstride=4 cstride=1
// ASM-NEXT: # layer fc2
// ASM:      gemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=4 n=2 accumulate=0
// ASM:      epilogue mode=dequant odtype=f32 bias=1 relu=0 src=0 dst=0 param=0 rows=1 cols=2 zp=0
// ASM-NEXT: store buf=act dtype=f32 sp=0 dram=640 rows=1 cols=2 rstride=2 cstride=1
// ASM-NEXT: halt
// ASM-NOT:  {{.}}
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %xq = quant.quantize %x {scale = array<f32: 0.01>, sparrow.sram = {in = 0 : i64, out = 64 : i64, param = 0 : i64}} : tensor<1x8xf32> -> tensor<1x8x!quant.q<si8:f32>>
  %w1 = onnx.Initializer "fc1.weight.nm2_4" = dense<[[0.0, 0.0, 3.0, -4.0, 0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0, 2.0, -3.0, 0.0], [1.0, 1.0, 0.0, 0.0, 2.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.4, 0.0, 0.0, 0.7, 0.8]]> : tensor<4x8xf32> : tensor<4x8xf32>
  %w1s = sparse.pack %w1 : tensor<4x8xf32> -> tensor<4x8xf32, #sparse.nm<2:4>>
  %w1q = quant.quantize %w1s {scale = array<f32: 0.0314960629, 0.0236220472, 0.0157480314, 0.00629921257>, axis = 0 : i64} : tensor<4x8xf32, #sparse.nm<2:4>> -> tensor<4x8x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>
  %b1 = onnx.Initializer "fc1.bias.i32" = dense<[0, 2117, -3175, 15875]> : tensor<4xi32> : tensor<4xi32>
  %a1 = quant.gemm %xq, %w1q, %b1 {onnx.node = "fc1", sparrow.tiles = {m = 1 : i64, n = 4 : i64, k = 8 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64, meta = 0 : i64}} : (tensor<1x8x!quant.q<si8:f32>>, tensor<4x8x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>, tensor<4xi32>) -> tensor<1x4xi32>
  %y1 = quant.requantize %a1 {scale = array<f64: 0.0071111109778219843, 0.0053333332333664885, 0.0035555554889109922, 0.0014222221955643968>, axis = 1 : i64} : tensor<1x4xi32> -> tensor<1x4x!quant.q<si8:f32>>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu1"} : (tensor<1x4x!quant.q<si8:f32>>) -> tensor<1x4x!quant.q<si8:f32>>
  %w2 = onnx.Initializer "fc2.weight" = dense<[[1.0, -1.0, 0.5, 2.0], [0.25, 0.5, -0.75, 1.0]]> : tensor<2x4xf32> : tensor<2x4xf32>
  %w2q = quant.quantize %w2 {scale = array<f32: 0.0157480314, 0.00787401572>, axis = 0 : i64} : tensor<2x4xf32> -> tensor<2x4x!quant.q<si8:f32, per_channel axis=0>>
  %a2 = quant.gemm %r1, %w2q {onnx.node = "fc2", sparrow.tiles = {m = 1 : i64, n = 2 : i64, k = 4 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64}} : (tensor<1x4x!quant.q<si8:f32>>, tensor<2x4x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<1x2xi32>
  %y2 = quant.dequantize %a2 {scale = array<f32: 0.000697501411, 0.000348750706>, axis = 1 : i64} : tensor<1x2xi32> -> tensor<1x2xf32>
  func.return %y2 : tensor<1x2xf32>
}

// -----

// fp32 fc3 [12, 128] in tiles of n = 8, k = 64: for each N tile (8, then the last 4) the K
// tiles accumulate (accumulate=0, then 1), then one epilogue and one store. Weight tiles
// start at wgt + 4 * (n0 * 128 + k0) and stride over whole rows (rstride = 128); the input
// tile at x + 4 * k0; bias and output at column n0 of their rows (rstride = 12).
// TILED:      sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 128]
// TILED-NEXT: sparrow.segment "fc3.wgt" kind=values dtype=f32 addr=512 shape=[12, 128]
// TILED-NEXT: sparrow.segment "fc3.bias" kind=scales dtype=f32 addr=6656 shape=[1, 12]
// TILED-NEXT: sparrow.segment "fc3" kind=activation dtype=f32 addr=6720 shape=[1, 12]
// TILED-NEXT: sparrow.segment "out" kind=output dtype=f32 addr=6784 shape=[1, 12]
// TILED-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=0 rows=1 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=512 rows=8 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=64 n=8 accumulate=0 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=256 rows=1 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=768 rows=8 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=64 n=8 accumulate=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=6656 rows=1 cols=8 rstride=12 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.epilogue mode=float odtype=f32 bias=1 relu=0 src=0 dst=0 param=0 rows=1 cols=8 zp=0 {layer = "fc3"}
// TILED-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=6720 rows=1 cols=8 rstride=12 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=0 rows=1 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=4608 rows=4 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=64 n=4 accumulate=0 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=256 rows=1 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=4864 rows=4 cols=64 rstride=128 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=64 n=4 accumulate=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=6688 rows=1 cols=4 rstride=12 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.epilogue mode=float odtype=f32 bias=1 relu=0 src=0 dst=0 param=0 rows=1 cols=4 zp=0 {layer = "fc3"}
// TILED-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=6752 rows=1 cols=4 rstride=12 cstride=1 {layer = "fc3"}
// TILED-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=6720 rows=1 cols=12 rstride=12 cstride=1 {layer = "softmax"}
// TILED-NEXT: sparrow.softmax src=0 dst=64 rows=1 cols=12 {layer = "softmax"}
// TILED-NEXT: sparrow.store buf=act dtype=f32 sp=64 dram=6784 rows=1 cols=12 rstride=12 cstride=1 {layer = "softmax"}
// TILED-NEXT: sparrow.halt
func.func @main(%x: tensor<1x128xf32> {onnx.name = "input"}) -> (tensor<1x12xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc3.weight" = dense<0.5> : tensor<12x128xf32> : tensor<12x128xf32>
  %b = onnx.Initializer "fc3.bias" = dense<0.25> : tensor<12xf32> : tensor<12xf32>
  %y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64, onnx.node = "fc3", sparrow.tiles = {m = 1 : i64, n = 8 : i64, k = 64 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64}} : (tensor<1x128xf32>, tensor<12x128xf32>, tensor<12xf32>) -> tensor<1x12xf32>
  %sm = onnx.Softmax(%y) {axis = 1 : i64, onnx.node = "softmax", sparrow.sram = {in = 0 : i64, out = 64 : i64}} : (tensor<1x12xf32>) -> tensor<1x12xf32>
  func.return %sm : tensor<1x12xf32>
}

// -----

// fp32 conv1 (ReLU fused) then pool1. DRAM keeps NCHW: the input is loaded transposed to
// [pixels, channels] (rows=16 cols=1 rstride=1 cstride=16), im2col builds [16, 9] columns,
// and the results are stored back transposed. A conv without a bias gets a zero one.
// CONV:      sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 1, 4, 4]
// CONV-NEXT: sparrow.segment "conv1.wgt" kind=values dtype=f32 addr=64 shape=[2, 9]
// CONV-NEXT: sparrow.segment "conv1.bias" kind=scales dtype=f32 addr=192 shape=[1, 2]
// CONV-NEXT: sparrow.segment "conv1" kind=activation dtype=f32 addr=256 shape=[1, 2, 4, 4]
// CONV-NEXT: sparrow.segment "out" kind=output dtype=f32 addr=384 shape=[1, 2, 2, 2]
// CONV-NEXT: sparrow.load buf=act dtype=f32 sp=128 dram=0 rows=16 cols=1 rstride=1 cstride=16 {layer = "conv1"}
// CONV-NEXT: sparrow.im2col dtype=f32 src=128 dst=192 c=1 h=4 w=4 kh=3 kw=3 sh=1 sw=1 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1 {layer = "conv1"}
// CONV-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=64 rows=2 cols=9 rstride=9 cstride=1 {layer = "conv1"}
// CONV-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=192 wgt=0 m=16 k=9 n=2 accumulate=0 {layer = "conv1"}
// CONV-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=192 rows=1 cols=2 rstride=2 cstride=1 {layer = "conv1"}
// CONV-NEXT: sparrow.epilogue mode=float odtype=f32 bias=1 relu=1 src=0 dst=0 param=0 rows=16 cols=2 zp=0 {layer = "conv1"}
// CONV-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=256 rows=16 cols=2 rstride=1 cstride=16 {layer = "conv1"}
// CONV-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=256 rows=16 cols=2 rstride=1 cstride=16 {layer = "pool1"}
// CONV-NEXT: sparrow.maxpool dtype=f32 src=0 dst=128 c=2 h=4 w=4 kh=2 kw=2 sh=2 sw=2 pt=0 pl=0 pb=0 pr=0 dh=1 dw=1 {layer = "pool1"}
// CONV-NEXT: sparrow.store buf=act dtype=f32 sp=128 dram=384 rows=4 cols=2 rstride=1 cstride=4 {layer = "pool1"}
// CONV-NEXT: sparrow.halt
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x2x2x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "conv1.weight" = dense<[[[[0.5, -1.0, 0.25], [1.0, 2.0, -0.5], [0.0, 0.75, 1.0]]], [[[-1.0, 0.5, 0.0], [0.25, -0.5, 1.5], [1.0, 0.0, -0.25]]]]> : tensor<2x1x3x3xf32> : tensor<2x1x3x3xf32>
  %c = onnx.Conv(%x, %w) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, onnx.node = "conv1", sparrow.tiles = {m = 16 : i64, n = 2 : i64, k = 9 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 128 : i64, cols = 192 : i64}} : (tensor<1x1x4x4xf32>, tensor<2x1x3x3xf32>) -> tensor<1x2x4x4xf32>
  %r = onnx.Relu(%c) {onnx.node = "relu1"} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, onnx.node = "pool1", sparrow.sram = {in = 0 : i64, out = 128 : i64}} : (tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32>
  func.return %p : tensor<1x2x2x2xf32>
}

// -----

// ERR-OP: spaq-opt: error: 'onnx.LRN' (layer 'lrn1') cannot run on Sparrow yet
func.func @main(%x: tensor<1x8x1x1xf32> {onnx.name = "input"}) -> (tensor<1x8x1x1xf32> {onnx.name = "out"}) {
  %y = onnx.LRN(%x) {size = 3 : i64, onnx.node = "lrn1"} : (tensor<1x8x1x1xf32>) -> tensor<1x8x1x1xf32>
  func.return %y : tensor<1x8x1x1xf32>
}

// -----

// edge's sparse GEMM does 2:4 only; datacenter also does 1:4 (one 2-bit index per kept value).
// ERR-NM: spaq-opt: error: layer 'fc9': target edge does not support 1:4 sparsity
// DC:      sparrow.segment "fc9.wgt" kind=values dtype=f32 addr=64 shape=[2, 2]
// DC-NEXT: sparrow.segment "fc9.meta" kind=metadata dtype=u2 addr=128 shape=[2, 4]
// DC:      sparrow.load buf=meta dtype=u2 sp=0 dram=128 rows=2 cols=4 rstride=4 cstride=1 {layer = "fc9"}
// DC-NEXT: sparrow.spgemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=8 n=2 accumulate=0 meta=0 nm_n=1 nm_m=4 {layer = "fc9"}
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc9.weight" = dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0, 0.0, 4.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %ws = sparse.pack %w : tensor<2x8xf32> -> tensor<2x8xf32, #sparse.nm<1:4>>
  %y = onnx.Gemm(%x, %ws) {transB = 1 : i64, onnx.node = "fc9", sparrow.tiles = {m = 1 : i64, n = 2 : i64, k = 8 : i64}, sparrow.sram = {out = 0 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 64 : i64, meta = 0 : i64}} : (tensor<1x8xf32>, tensor<2x8xf32, #sparse.nm<1:4>>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// Embedding + LayerNorm (the transformer layers, fp32, datacenter; run from tile-layers on).
// The int64 ids are an i32 input (the runtime narrows them); GATHER picks table rows by them.
// The Add of a constant with one value is an immediate; the LayerNorm is the vector unit's
// eight-instruction idiom (mean, x - mean, variance, + eps, rsqrt, scale, gamma, beta), gamma
// and beta as row vectors in PARAM; the region computes in place in one [4, 8] tile slot.
// EMB:      sparrow.segment "ids" kind=input dtype=i32 addr=0 shape=[1, 4]
// EMB-NEXT: sparrow.segment "emb.const" kind=values dtype=f32 addr=64 shape=[3, 8]
// EMB:      sparrow.load buf=act dtype=i32 sp=0 dram=0 rows=1 cols=4 rstride=4 cstride=1 {layer = "embed"}
// EMB-NEXT: sparrow.gather buf=act dtype=f32 sp=64 dram=64 rows=4 cols=8 rstride=8 limit=3 idx=0 {layer = "embed"}
// EMB-NEXT: sparrow.store buf=act dtype=f32 sp=64 dram=192 rows=1 cols=32 rstride=32 cstride=1 {layer = "embed"}
// EMB-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=448 rows=1 cols=8 rstride=8 cstride=1 {layer = "add"}
// EMB-NEXT: sparrow.load buf=param dtype=f32 sp=64 dram=512 rows=1 cols=8 rstride=8 cstride=1 {layer = "add"}
// EMB-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=192 rows=1 cols=32 rstride=32 cstride=1 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=add src=0 bcast=imm imm=0x3f000000 dst=0 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vred op=sum src=0 imm=0x3e000000 dst=128 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=sub src=0 bcast=col src1=128 dst=0 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vred op=sumsq src=0 imm=0x3e000000 dst=192 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=add src=192 bcast=imm imm=0x3727c5ac dst=192 rows=4 cols=1 {layer = "add"}
// EMB-NEXT: sparrow.vun op=rsqrt src=192 dst=192 rows=4 cols=1 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=mul src=0 bcast=col src1=192 dst=0 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=mul src=0 bcast=row buf1=param dst=0 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.vbin op=add src=0 bcast=row buf1=param src1=64 dst=0 rows=4 cols=8 {layer = "add"}
// EMB-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=320 rows=1 cols=32 rstride=32 cstride=1 {layer = "add"}
// EMB-NEXT: sparrow.halt
func.func @main(%ids: tensor<1x4xi64> {onnx.name = "ids"}) -> (tensor<1x4x8xf32> {onnx.name = "out"}) {
  %emb = onnx.Initializer "emb" = dense<[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<3x8xf32> : tensor<3x8xf32>
  %pos = onnx.Initializer "pos" = dense<0.5> : tensor<1x4x8xf32> : tensor<1x4x8xf32>
  %g = onnx.Initializer "ln.weight" = dense<[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]> : tensor<8xf32> : tensor<8xf32>
  %b = onnx.Initializer "ln.bias" = dense<[0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5]> : tensor<8xf32> : tensor<8xf32>
  %e = onnx.Gather(%emb, %ids) {onnx.node = "embed"} : (tensor<3x8xf32>, tensor<1x4xi64>) -> tensor<1x4x8xf32>
  %x = onnx.Add(%e, %pos) {onnx.node = "add"} : (tensor<1x4x8xf32>, tensor<1x4x8xf32>) -> tensor<1x4x8xf32>
  %y = onnx.LayerNormalization(%x, %g, %b) {axis = -1 : i64, epsilon = 1.0e-05 : f32, onnx.node = "ln"} : (tensor<1x4x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<1x4x8xf32>
  func.return %y : tensor<1x4x8xf32>
}

// -----

// Attention, 2 heads of 4: the Reshapes and Transposes move no data — the batched MatMuls
// load each head's Q rows and K rows (WGT holds W = Kᵀᵀ = K_h) through DMA strides, one GEMM
// per head into consecutive ACC tiles. The scale and the softmax are the first matmul's
// tail: the VBIN reads the scores straight from ACC. P·V's W = V_hᵀ for both heads is one
// column-strided load (rstride=1 cstride=8). Its result, transposed back and reshaped to
// [4, 8], is not a strided view of the [2, 4, 4] product: the matmul stores each head's
// [4, 4] from ACC into its columns of the [4, 8] tensor instead (no copy).
// ATT:      sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=4 cols=4 rstride=8 cstride=1 {layer = "scores"}
// ATT-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=16 rows=4 cols=4 rstride=8 cstride=1 {layer = "scores"}
// ATT-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=128 rows=4 cols=4 rstride=8 cstride=1 {layer = "scores"}
// ATT-NEXT: sparrow.load buf=wgt dtype=f32 sp=64 dram=144 rows=4 cols=4 rstride=8 cstride=1 {layer = "scores"}
// ATT-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m=4 k=4 n=4 accumulate=0 {layer = "scores"}
// ATT-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=64 act=64 wgt=64 m=4 k=4 n=4 accumulate=0 {layer = "scores"}
// ATT-NEXT: sparrow.vbin op=mul buf=acc src=0 bcast=imm imm=0x3f000000 dst=128 rows=8 cols=4 {layer = "scale"}
// ATT-NEXT: sparrow.softmax src=128 dst=128 rows=8 cols=4 {layer = "scale"}
// ATT-NEXT: sparrow.store buf=act dtype=f32 sp=128 dram=384 rows=1 cols=32 rstride=32 cstride=1 {layer = "scale"}
// ATT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=384 rows=1 cols=32 rstride=32 cstride=1 {layer = "context"}
// ATT-NEXT: sparrow.load buf=wgt dtype=f32 sp=0 dram=256 rows=8 cols=4 rstride=1 cstride=8 {layer = "context"}
// ATT-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m=4 k=4 n=4 accumulate=0 {layer = "context"}
// ATT-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=64 act=64 wgt=64 m=4 k=4 n=4 accumulate=0 {layer = "context"}
// ATT-NEXT: sparrow.store buf=acc dtype=f32 sp=0 dram=512 rows=4 cols=4 rstride=8 cstride=1 {layer = "context"}
// ATT-NEXT: sparrow.store buf=acc dtype=f32 sp=64 dram=528 rows=4 cols=4 rstride=8 cstride=1 {layer = "context"}
// ATT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=512 rows=1 cols=32 rstride=32 cstride=1 {layer = "relu"}
// ATT-NEXT: sparrow.vbin op=max src=0 bcast=imm dst=0 rows=4 cols=8 {layer = "relu"}
// ATT-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=640 rows=1 cols=32 rstride=32 cstride=1 {layer = "relu"}
func.func @main(%q: tensor<4x8xf32> {onnx.name = "q"}, %k: tensor<4x8xf32> {onnx.name = "k"}, %v: tensor<4x8xf32> {onnx.name = "v"}) -> (tensor<4x8xf32> {onnx.name = "out"}) {
  %s4 = onnx.Initializer "s4" = dense<[1, 4, 2, 4]> : tensor<4xi64> : tensor<4xi64>
  %s2 = onnx.Initializer "s2" = dense<[4, 8]> : tensor<2xi64> : tensor<2xi64>
  %scale = onnx.Initializer "scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %q4 = onnx.Reshape(%q, %s4) : (tensor<4x8xf32>, tensor<4xi64>) -> tensor<1x4x2x4xf32>
  %k4 = onnx.Reshape(%k, %s4) : (tensor<4x8xf32>, tensor<4xi64>) -> tensor<1x4x2x4xf32>
  %v4 = onnx.Reshape(%v, %s4) : (tensor<4x8xf32>, tensor<4xi64>) -> tensor<1x4x2x4xf32>
  %qh = onnx.Transpose(%q4) {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x4x2x4xf32>) -> tensor<1x2x4x4xf32>
  %kt = onnx.Transpose(%k4) {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x4x2x4xf32>) -> tensor<1x2x4x4xf32>
  %vh = onnx.Transpose(%v4) {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x4x2x4xf32>) -> tensor<1x2x4x4xf32>
  %s = onnx.MatMul(%qh, %kt) {onnx.node = "scores"} : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %t = onnx.Mul(%s, %scale) {onnx.node = "scale"} : (tensor<1x2x4x4xf32>, tensor<f32>) -> tensor<1x2x4x4xf32>
  %p = onnx.Softmax(%t) {axis = -1 : i64, onnx.node = "softmax"} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %c = onnx.MatMul(%p, %vh) {onnx.node = "context"} : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %ct = onnx.Transpose(%c) {perm = array<i64: 0, 2, 1, 3>} : (tensor<1x2x4x4xf32>) -> tensor<1x4x2x4xf32>
  %o = onnx.Reshape(%ct, %s2) {onnx.node = "merge"} : (tensor<1x4x2x4xf32>, tensor<2xi64>) -> tensor<4x8xf32>
  %r = onnx.Relu(%o) {onnx.node = "relu"} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  func.return %r : tensor<4x8xf32>
}

// -----

// W8A8 with per-token activations: fc and fc2 read the same input, so they share one LOAD
// and one VQUANT (int8 + a scale per row); then per projection GEMM i8 -> ACC i32, EPILOGUE
// dequant by the weight scales (PARAM row 0), VBIN mul by the row scales (bcast col),
// VBIN add of fc's float bias (PARAM row 1). The Add of both and the GELU are a region.
// W8A8:      sparrow.segment "fc.dequant" kind=scales dtype=f32 addr=192 shape=[2, 2]
// W8A8:      sparrow.segment "fc2.dequant" kind=scales dtype=f32 addr=384 shape=[1, 2]
// W8A8:      sparrow.load buf=act dtype=f32 sp=128 dram=0 rows=4 cols=8 rstride=8 cstride=1 {layer = "fc"}
// W8A8-NEXT: sparrow.vquant odtype=i8 src=128 dst=64 scale=256 rows=4 cols=8 {layer = "fc"}
// W8A8-NEXT: sparrow.load buf=wgt dtype=i8 sp=0 dram=128 rows=2 cols=8 rstride=8 cstride=1 {layer = "fc"}
// W8A8-NEXT: sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=4 k=8 n=2 accumulate=0 {layer = "fc"}
// W8A8-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=192 rows=2 cols=2 rstride=2 cstride=1 {layer = "fc"}
// W8A8-NEXT: sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=0 param=0 rows=4 cols=2 zp=0 {layer = "fc"}
// W8A8-NEXT: sparrow.vbin op=mul src=0 bcast=col src1=256 dst=0 rows=4 cols=2 {layer = "fc"}
// W8A8-NEXT: sparrow.vbin op=add src=0 bcast=row buf1=param src1=8 dst=0 rows=4 cols=2 {layer = "fc"}
// W8A8-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=256 rows=4 cols=2 rstride=2 cstride=1 {layer = "fc"}
// W8A8-NEXT: sparrow.load buf=wgt dtype=i8 sp=0 dram=320 rows=2 cols=8 rstride=8 cstride=1 {layer = "fc2"}
// W8A8-NEXT: sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=4 k=8 n=2 accumulate=0 {layer = "fc2"}
// W8A8-NEXT: sparrow.load buf=param dtype=f32 sp=0 dram=384 rows=1 cols=2 rstride=2 cstride=1 {layer = "fc2"}
// W8A8-NEXT: sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=0 param=0 rows=4 cols=2 zp=0 {layer = "fc2"}
// W8A8-NEXT: sparrow.vbin op=mul src=0 bcast=col src1=256 dst=0 rows=4 cols=2 {layer = "fc2"}
// W8A8-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=448 rows=4 cols=2 rstride=2 cstride=1 {layer = "fc2"}
// W8A8-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=256 rows=1 cols=8 rstride=8 cstride=1 {layer = "sum"}
// W8A8-NEXT: sparrow.load buf=act dtype=f32 sp=64 dram=448 rows=1 cols=8 rstride=8 cstride=1 {layer = "sum"}
// W8A8-NEXT: sparrow.vbin op=add src=0 src1=64 dst=0 rows=4 cols=2 {layer = "sum"}
// W8A8-NEXT: sparrow.vun op=gelu src=0 dst=0 rows=4 cols=2 {layer = "sum"}
// W8A8-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=512 rows=1 cols=8 rstride=8 cstride=1 {layer = "sum"}
func.func @main(%x: tensor<4x8xf32> {onnx.name = "x"}) -> (tensor<4x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc.weight" = dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %b = onnx.Initializer "fc.bias" = dense<[0.5, -0.5]> : tensor<2xf32> : tensor<2xf32>
  %y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64, onnx.node = "fc"} : (tensor<4x8xf32>, tensor<2x8xf32>, tensor<2xf32>) -> tensor<4x2xf32>
  %w2 = onnx.Initializer "fc2.weight" = dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %y2 = onnx.Gemm(%x, %w2) {transB = 1 : i64, onnx.node = "fc2"} : (tensor<4x8xf32>, tensor<2x8xf32>) -> tensor<4x2xf32>
  %s = onnx.Add(%y, %y2) {onnx.node = "sum"} : (tensor<4x2xf32>, tensor<4x2xf32>) -> tensor<4x2xf32>
  %g = onnx.Gelu(%s) {onnx.node = "gelu"} : (tensor<4x2xf32>) -> tensor<4x2xf32>
  func.return %g : tensor<4x2xf32>
}

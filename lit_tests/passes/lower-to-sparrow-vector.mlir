// Vector-unit forms of lower-to-sparrow: multi-instruction elementwise ops, integer mode,
// row-wise layers (reductions, arg reductions, softmax / layer norm on any axis), a Gemm by an activation.
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=ELU
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=MOD
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=SUM
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=ARG
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=SM
// RUN: awk '/^\/\/ -----$/{i++; next} i==5' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=LN
// RUN: awk '/^\/\/ -----$/{i++; next} i==6' %s | spaq-opt -p 'onnx-canonicalize,tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' -t sparrow-asm | filecheck %s --check-prefix=GEMM

// Activations are short VBIN / VUN / VSEL programs (vector_expand.py); only the last writes the result.
// ELU: vun op=exp src=0 dst=[[S:[0-9]+]]
// ELU-NEXT: vbin op=sub src=[[S]] bcast=imm imm=0x3f800000 dst=[[S]]
// ELU-NEXT: vbin op=mul src=[[S]] bcast=imm imm=0x3f000000 dst=[[S]]
// ELU-NEXT: vbin op=gt src=0 bcast=imm dst=[[M:[0-9]+]]
// ELU-NEXT: vsel mask=[[M]] src=0 src1=[[S]] dst=0 rows=2 cols=8
func.func @main(%x: tensor<2x8xf32> {onnx.name = "x"}) -> (tensor<2x8xf32> {onnx.name = "y"}) {
  %y = onnx.Elu(%x) {alpha = 0.5 : f32, onnx.node = "elu1"} : (tensor<2x8xf32>) -> tensor<2x8xf32>
  func.return %y : tensor<2x8xf32>
}

// -----

// Integer operands and result: the vector unit's integer mode (exact).
// MOD: vbin op=mod dtype=i16 src=0 dtype1=i16 src1=64 odtype=i16 dst=0 rows=2 cols=8
func.func @main(%a: tensor<2x8xi16> {onnx.name = "a"}, %b: tensor<2x8xi16> {onnx.name = "b"}) -> (tensor<2x8xi16> {onnx.name = "y"}) {
  %y = onnx.Mod(%a, %b) {onnx.node = "mod1"} : (tensor<2x8xi16>, tensor<2x8xi16>) -> tensor<2x8xi16>
  func.return %y : tensor<2x8xi16>
}

// -----

// A reduction over axis 1 of [2, 3, 4]: the DMA puts the reduced axis last ([8, 3] rows).
// SUM: load buf=act dtype=f32 sp=0 dram=0 rows=4 cols=3 rstride=1 cstride=4
// SUM-NEXT: load buf=act dtype=f32 sp=48 dram=48 rows=4 cols=3 rstride=1 cstride=4
// SUM-NEXT: vred op=sum src=0 dst=[[R:[0-9]+]] rows=8 cols=3
// SUM-NEXT: store buf=act dtype=f32 sp=[[R]] {{.*}} rows=1 cols=8
func.func @main(%x: tensor<2x3x4xf32> {onnx.name = "x"}) -> (tensor<2x1x4xf32> {onnx.name = "y"}) {
  %axes = onnx.Initializer "axes" = dense<[1]> : tensor<1xi64> : tensor<1xi64>
  %y = onnx.ReduceSum(%x, %axes) {keepdims = 1 : i64, onnx.node = "sum1"} : (tensor<2x3x4xf32>, tensor<1xi64>) -> tensor<2x1x4xf32>
  func.return %y : tensor<2x1x4xf32>
}

// -----

// ARG: vred op=argmax_last src=0 odtype=i32 dst={{[0-9]+}} rows=8 cols=3
func.func @main(%x: tensor<2x3x4xf32> {onnx.name = "x"}) -> (tensor<2x1x4xi64> {onnx.name = "y"}) {
  %y = onnx.ArgMax(%x) {axis = 1 : i64, select_last_index = 1 : i64, onnx.node = "arg1"} : (tensor<2x3x4xf32>) -> tensor<2x1x4xi64>
  func.return %y : tensor<2x1x4xi64>
}

// -----

// Softmax over axis 0: loaded and stored through the transposing strides.
// SM: load buf=act dtype=f32 sp=0 dram=0 rows=12 cols=2 rstride=1 cstride=12
// SM-NEXT: softmax src=0 dst=[[Y:[0-9]+]] rows=12 cols=2
// SM-NEXT: store buf=act dtype=f32 sp=[[Y]] dram={{[0-9]+}} rows=12 cols=2 rstride=1 cstride=12
func.func @main(%x: tensor<2x3x4xf32> {onnx.name = "x"}) -> (tensor<2x3x4xf32> {onnx.name = "y"}) {
  %y = onnx.Softmax(%x) {axis = 0 : i64, onnx.node = "sm1"} : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  func.return %y : tensor<2x3x4xf32>
}

// -----

// LayerNormalization over axes 1.. of [2, 3, 4]: rows of 12 elements, γ a PARAM row.
// LN: vred op=sum src=0 imm=0x3daaaaab dst={{[0-9]+}} rows=2 cols=12
// LN: vun op=rsqrt
// LN: load buf=param dtype=f32 sp=0 dram={{[0-9]+}} rows=1 cols=12
// LN-NEXT: vbin op=mul src={{[0-9]+}} bcast=row buf1=param dst={{[0-9]+}} rows=2 cols=12
func.func @main(%x: tensor<2x3x4xf32> {onnx.name = "x"}) -> (tensor<2x3x4xf32> {onnx.name = "y"}) {
  %g = onnx.Initializer "gamma" = dense<1.5> : tensor<3x4xf32> : tensor<3x4xf32>
  %y = onnx.LayerNormalization(%x, %g) {axis = 1 : i64, onnx.node = "ln1"} : (tensor<2x3x4xf32>, tensor<3x4xf32>) -> tensor<2x3x4xf32>
  func.return %y : tensor<2x3x4xf32>
}

// -----

// Gemm by an activation: onnx-canonicalize makes it MatMul (B into WGT from DRAM) and Mul by alpha (its tail, on ACC).
// GEMM: load buf=wgt dtype=f32 sp=0 dram={{[0-9]+}} rows=1 cols=20
// GEMM-NEXT: gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m=3 k=5 n=4 accumulate=0
// GEMM-NEXT: vbin op=mul buf=acc src=0 bcast=imm imm=0x40000000
func.func @main(%a: tensor<3x5xf32> {onnx.name = "a"}, %b: tensor<4x5xf32> {onnx.name = "b"}) -> (tensor<3x4xf32> {onnx.name = "y"}) {
  %y = onnx.Gemm(%a, %b) {transB = 1 : i64, alpha = 2.0 : f32, onnx.node = "gemm1"} : (tensor<3x5xf32>, tensor<4x5xf32>) -> tensor<3x4xf32>
  func.return %y : tensor<3x4xf32>
}

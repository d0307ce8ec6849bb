// Data movement (passes/sparrow_moves.py), fp32 on datacenter, run from tile-layers on.
// Chunks separated by `// -----`, compiled one at a time.
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=CAT
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=PAD
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=SPLIT
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=LINEAR
// RUN: awk '/^\/\/ -----$/{i++; next} i==4' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=PERM
// RUN: awk '/^\/\/ -----$/{i++; next} i==5' %s | spaq-opt -p 'tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=COPY

// Concat along the last axis: each input is one box of the result, a contiguous LOAD and a
// STORE whose rows are the result's rows (rstride 5).
// CAT:      sparrow.segment "y" kind=output dtype=f32 addr=128 shape=[2, 5]
// CAT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=6 rstride=6 cstride=1 {layer = "cat"}
// CAT-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=128 rows=2 cols=3 rstride=5 cstride=1 {layer = "cat"}
// CAT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=64 rows=1 cols=4 rstride=4 cstride=1 {layer = "cat"}
// CAT-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=140 rows=2 cols=2 rstride=5 cstride=1 {layer = "cat"}
// CAT-NEXT: sparrow.halt
func.func @main(%a: tensor<2x3xf32> {onnx.name = "a"}, %b: tensor<2x2xf32> {onnx.name = "b"}) -> (tensor<2x5xf32> {onnx.name = "y"}) {
  %y = onnx.Concat(%a, %b) {axis = 1 : i64, onnx.node = "cat"} : (tensor<2x3xf32>, tensor<2x2xf32>) -> tensor<2x5xf32>
  func.return %y : tensor<2x5xf32>
}

// -----
// A constant Pad: the fill value is a one-element segment LOADed with zero strides over the
// whole result and STOREd; then the input is STOREd into its box.
// PAD:      sparrow.segment "pad.fill" kind=values dtype=f32 addr=192 shape=[1]
// PAD-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=192 rows=1 cols=20 rstride=0 cstride=0 {layer = "pad"}
// PAD-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=64 rows=1 cols=20 rstride=20 cstride=1 {layer = "pad"}
// PAD-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=6 rstride=6 cstride=1 {layer = "pad"}
// PAD-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=88 rows=2 cols=3 rstride=5 cstride=1 {layer = "pad"}
// PAD-NEXT: sparrow.halt
func.func @main(%x: tensor<2x3xf32> {onnx.name = "x"}) -> (tensor<4x5xf32> {onnx.name = "y"}) {
  %p = onnx.Initializer "pads" = dense<[1, 1, 1, 1]> : tensor<4xi64> : tensor<4xi64>
  %v = onnx.Initializer "value" = dense<1.5> : tensor<f32> : tensor<f32>
  %y = onnx.Pad(%x, %p, %v) {mode = "constant", onnx.node = "pad"} : (tensor<2x3xf32>, tensor<4xi64>, tensor<f32>) -> tensor<4x5xf32>
  func.return %y : tensor<4x5xf32>
}

// -----
// Split: every result is a box of the input, both graph outputs.
// SPLIT:      sparrow.segment "y0" kind=output dtype=f32 addr=64 shape=[2]
// SPLIT-NEXT: sparrow.segment "y1" kind=output dtype=f32 addr=128 shape=[4]
// SPLIT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=2 rstride=2 cstride=1 {layer = "split"}
// SPLIT-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=64 rows=1 cols=2 rstride=2 cstride=1 {layer = "split"}
// SPLIT-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=8 rows=1 cols=4 rstride=4 cstride=1 {layer = "split"}
// SPLIT-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=128 rows=1 cols=4 rstride=4 cstride=1 {layer = "split"}
func.func @main(%x: tensor<6xf32> {onnx.name = "x"}) -> (tensor<2xf32> {onnx.name = "y0"}, tensor<4xf32> {onnx.name = "y1"}) {
  %s = onnx.Initializer "split" = dense<[2, 4]> : tensor<2xi64> : tensor<2xi64>
  %y0, %y1 = onnx.Split(%x, %s) {axis = 0 : i64, onnx.node = "split"} : (tensor<6xf32>, tensor<2xi64>) -> (tensor<2xf32>, tensor<4xf32>)
  func.return %y0, %y1 : tensor<2xf32>, tensor<4xf32>
}

// -----
// Linear Resize 1x2 -> 1x4 (half_pixel): two taps. Per tap the gathered inputs (zero-stride
// DMA pieces: x0 x0 x0 x1, then x1 x1 x1 x0), its weights, VBIN mul; the second is added.
// LINEAR:      sparrow.segment "up.w0" kind=scales dtype=f32 addr=128 shape=[4]
// LINEAR-NEXT: sparrow.segment "up.w1" kind=scales dtype=f32 addr=192 shape=[4]
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp=[[A:[0-9]+]] dram=0 rows=1 cols=3 rstride=0 cstride=0 {layer = "up"}
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp={{[0-9]+}} dram=4 rows=1 cols=1 rstride=0 cstride=1 {layer = "up"}
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp=[[W:[0-9]+]] dram=128 rows=1 cols=4 rstride=4 cstride=1 {layer = "up"}
// LINEAR-NEXT: sparrow.vbin op=mul src=[[A]] src1=[[W]] dst=0 rows=1 cols=4 {layer = "up"}
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp=[[A]] dram=4 rows=1 cols=3 rstride=0 cstride=0 {layer = "up"}
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp={{[0-9]+}} dram=0 rows=1 cols=1 rstride=0 cstride=1 {layer = "up"}
// LINEAR-NEXT: sparrow.load buf=act dtype=f32 sp=[[W]] dram=192 rows=1 cols=4 rstride=4 cstride=1 {layer = "up"}
// LINEAR-NEXT: sparrow.vbin op=mul src=[[A]] src1=[[W]] dst=[[A]] rows=1 cols=4 {layer = "up"}
// LINEAR-NEXT: sparrow.vbin op=add src=0 src1=[[A]] dst=0 rows=1 cols=4 {layer = "up"}
// LINEAR-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=64 rows=1 cols=4 rstride=4 cstride=1 {layer = "up"}
func.func @main(%x: tensor<1x1x1x2xf32> {onnx.name = "x"}) -> (tensor<1x1x1x4xf32> {onnx.name = "y"}) {
  %none = onnx.NoValue : none
  %s = onnx.Initializer "scales" = dense<[1.0, 1.0, 1.0, 2.0]> : tensor<4xf32> : tensor<4xf32>
  %y = onnx.Resize(%x, %none, %s) {mode = "linear", onnx.node = "up"} : (tensor<1x1x1x2xf32>, none, tensor<4xf32>) -> tensor<1x1x1x4xf32>
  func.return %y : tensor<1x1x1x4xf32>
}

// -----
// A Gather by constant indices that no strides describe (a reversal: negative strides) and that DMA pieces
// would cut into single elements: a constant i32 index segment, LOAD it, GATHER elements.
// PERM:      sparrow.segment "perm.idx" kind=values dtype=i32 addr={{[0-9]+}} shape=[8]
// PERM:      sparrow.load buf=act dtype=i32 sp=[[I:[0-9]+]] dram={{[0-9]+}} rows=1 cols=8 rstride=8 cstride=1 {layer = "perm"}
// PERM-NEXT: sparrow.gather buf=act dtype=f32 sp=0 dram=0 rows=8 cols=1 rstride=1 limit=8 idx=[[I]] {layer = "perm"}
// PERM-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram={{[0-9]+}} rows=1 cols=8 rstride=8 cstride=1 {layer = "perm"}
func.func @main(%x: tensor<8xf32> {onnx.name = "x"}) -> (tensor<8xf32> {onnx.name = "y"}) {
  %i = onnx.Initializer "idx" = dense<[7, 6, 5, 4, 3, 2, 1, 0]> : tensor<8xi64> : tensor<8xi64>
  %y = onnx.Gather(%x, %i) {axis = 0 : i64, onnx.node = "perm"} : (tensor<8xf32>, tensor<8xi64>) -> tensor<8xf32>
  func.return %y : tensor<8xf32>
}

// -----
// A graph output that is the graph input: the program keeps the input and copies it into
// the output's own segment.
// COPY:      sparrow.segment "x" kind=input dtype=f32 addr=0 shape=[2, 2]
// COPY-NEXT: sparrow.segment "y" kind=output dtype=f32 addr=64 shape=[2, 2]
// COPY-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=4 rstride=4 cstride=1 {layer = "y"}
// COPY-NEXT: sparrow.store buf=act dtype=f32 sp=0 dram=64 rows=1 cols=4 rstride=0 cstride=1 {layer = "y"}
// COPY-NEXT: sparrow.halt
func.func @main(%x: tensor<2x2xf32> {onnx.name = "x"}) -> (tensor<2x2xf32> {onnx.name = "y"}) {
  func.return %x : tensor<2x2xf32>
}

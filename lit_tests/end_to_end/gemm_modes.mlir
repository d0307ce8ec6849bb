// One small layer pair (fc1 -> Relu -> fc2, 8 x 8 weights) in every GEMM mode the compiler
// emits: the decision of choose-compression becomes types (quantize, prune-magnitude) and
// the types the instruction (passes/gemm_modes.py): its mnemonic (gemm / spgemm / bsgemm /
// usgemm), mode fields (adtype, wdtype, wfmt, cdtype / cb, askip, the sparse fields) and the
// segments of its values and metadata. The datacenter target has every mode; edge lacks fp8,
// binary, block sparsity... (ERR-*). The `spaq compile` flags reach the same (CLI-*).
// RUN: spaq-opt %s -p 'choose-compression{precision=fp32},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=FP32
// RUN: spaq-opt %s -p 'choose-compression{precision=fp16},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=FP16
// RUN: spaq-opt %s -p 'choose-compression{precision=bf16 sparsity=block-4x4},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=BF16
// RUN: spaq-opt %s -p 'choose-compression{precision=fp8-e4m3 sparsity="2:4"},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=E4M3
// RUN: spaq-opt %s -p 'choose-compression{precision=fp8-e5m2 sparsity=unstructured-csr},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=E5M2
// RUN: spaq-opt %s -p 'choose-compression{precision=int8 sparsity=block-4x4},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=INT8
// RUN: spaq-opt %s -p 'choose-compression{precision=int4 sparsity="2:4"},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=INT4
// RUN: spaq-opt %s -p 'choose-compression{precision=int2 sparsity=unstructured-bitmask},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=INT2
// RUN: spaq-opt %s -p 'choose-compression{precision=ternary sparsity=unstructured-csr density=0.25},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=TERNARY
// RUN: spaq-opt %s -p 'choose-compression{precision=binary},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=BINARY
// RUN: spaq-opt %s -p 'choose-compression{precision=codebook-4 sparsity=unstructured-bitmask},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=CODEBOOK
// RUN: spaq-opt %s -p 'choose-compression{precision=codebook-16},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=CB16
// RUN: spaq-opt %s -p 'choose-compression{precision=int8 askip=relu},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=ASKIP
// RUN: spaq-opt %s -p 'choose-compression{precision=int4-a4},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=A4
// RUN: spaq-opt %s -p 'choose-compression{precision=int2-a2 sparsity="2:4"},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=datacenter},allocate-scratchpad{target=datacenter},lower-to-sparrow{target=datacenter}' | filecheck %s --check-prefix=A2
// RUN: not spaq-opt %s -p 'choose-compression{precision=fp8-e4m3},quantize,tile-layers{target=edge}' 2>&1 | filecheck %s --check-prefix=ERR-F8
// RUN: not spaq-opt %s -p 'choose-compression{precision=int8 sparsity=unstructured-csr},prune-magnitude,quantize{calibration="%inputs/calib_1x8.npz"},tile-layers{target=edge}' 2>&1 | filecheck %s --check-prefix=ERR-CSR
// RUN: spaq compile %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 --target datacenter --precision ternary --sparsity block-4x4 --density 0.5 --askip relu --calibration %examples/digits/digits_calib.npz -o %t && filecheck %s --check-prefix=CLI < %t/program.s
// RUN: not spaq compile %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 --target edge --precision fp8-e4m3 -o %t.err 2>&1 | filecheck %s --check-prefix=CLI-ERR
// RUN: not spaq compile %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 --precision int3 -o %t.err 2>&1 | filecheck %s --check-prefix=CLI-PRECISION
// RUN: not spaq compile %examples/digits/digits_cnn.onnx --shape input=1x1x8x8 --sparsity block-4 -o %t.err 2>&1 | filecheck %s --check-prefix=CLI-SPARSITY

// Float layers: weights rounded to the type (fp8 saturating), the graph input cast on the
// vector unit (VUN copy with the output type), the GEMM in the type's mode (f16 for f16 /
// bf16, f8); fc1 feeds only fc2, of the same type, so its EPILOGUE writes that type.
// FP32:     sparrow.segment "fc2.wgt" kind=values dtype=f32 addr={{[0-9]+}} shape=[8, 8]
// FP32:     sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 {layer = "fc2"}

// FP16:     sparrow.segment "fc2.wgt" kind=values dtype=f16 addr={{[0-9]+}} shape=[8, 8]
// FP16:     sparrow.epilogue mode=float odtype=f16 bias=1 relu=1 {{.*}} {layer = "fc1"}
// FP16:     sparrow.gemm adtype=f16 wdtype=f16 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 {layer = "fc2"}

// BF16:     sparrow.segment "fc2.wgt.n0k0" kind=values dtype=bf16 addr={{[0-9]+}} shape=[8, 4]
// BF16:     sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u8 addr={{[0-9]+}} shape=[1, 2]
// BF16:     sparrow.epilogue mode=float odtype=bf16 bias=1 relu=1 {{.*}} {layer = "fc1"}
// BF16:     sparrow.bsgemm adtype=bf16 wdtype=bf16 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 meta=0 br=4 bc=4 nb=2 {layer = "fc2"}

// E4M3:     sparrow.segment "fc2.wgt" kind=values dtype=f8e4m3 addr={{[0-9]+}} shape=[8, 4]
// E4M3:     sparrow.segment "fc2.meta" kind=metadata dtype=u2 addr={{[0-9]+}} shape=[8, 4]
// E4M3:     sparrow.epilogue mode=float odtype=f8e4m3 bias=1 relu=1 {{.*}} {layer = "fc1"}
// E4M3:     sparrow.spgemm adtype=f8e4m3 wdtype=f8e4m3 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc2"}

// E5M2:     sparrow.segment "fc2.wgt.n0k0" kind=values dtype=f8e5m2 addr={{[0-9]+}} shape=[1, 32]
// E5M2:     sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u8 addr={{[0-9]+}} shape=[1, 41]
// E5M2:     sparrow.epilogue mode=float odtype=f8e5m2 bias=1 relu=1 {{.*}} {layer = "fc1"}
// E5M2:     sparrow.usgemm adtype=f8e5m2 wdtype=f8e5m2 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 fmt=csr meta=0 nnz=32 {layer = "fc2"}

// Integer layers take int8 activations: int8 / int4 / int2 weights run in the i8 mode;
// block sparsity stores the kept 4x4 blocks and their ids (one u8 each), unstructured the
// non-zeros in row order with a u1 bitmask [n, k] or CSR bytes (row pointers, columns).
// INT8:     sparrow.segment "fc2.wgt.n0k0" kind=values dtype=i8 addr={{[0-9]+}} shape=[8, 4]
// INT8:     sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u8 addr={{[0-9]+}} shape=[1, 2]
// INT8:     sparrow.bsgemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 meta=0 br=4 bc=4 nb=2 {layer = "fc2"}

// INT4:     sparrow.segment "fc2.wgt" kind=values dtype=i4 addr={{[0-9]+}} shape=[8, 4]
// INT4:     sparrow.segment "fc2.meta" kind=metadata dtype=u2 addr={{[0-9]+}} shape=[8, 4]
// INT4:     sparrow.spgemm adtype=i8 wdtype=i4 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc2"}

// INT2:     sparrow.segment "fc2.wgt.n0k0" kind=values dtype=i2 addr={{[0-9]+}} shape=[1, 32]
// INT2:     sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u1 addr={{[0-9]+}} shape=[8, 8]
// INT2:     sparrow.usgemm adtype=i8 wdtype=i2 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 fmt=bitmask meta=0 nnz=32 {layer = "fc2"}

// A -a4 / -a2 precision makes the Gemm layers' activations 4 / 2-bit: the input is quantized
// to i4 (QUANT), fc1 requantizes to what fc2 takes, and both run in the i4 / i2 mode.
// A4:       sparrow.quant odtype=i4
// A4:       sparrow.gemm adtype=i4 wdtype=i4 {{.*}} {layer = "fc1"}
// A4:       sparrow.epilogue mode=requant odtype=i4 {{.*}} {layer = "fc1"}
// A4:       sparrow.gemm adtype=i4 wdtype=i4 {{.*}} {layer = "fc2"}
// A2:       sparrow.segment "fc2.meta" kind=metadata dtype=u2
// A2:       sparrow.quant odtype=i2
// A2:       sparrow.spgemm adtype=i2 wdtype=i2 {{.*}} nm_n=2 nm_m=4 {layer = "fc1"}
// A2:       sparrow.spgemm adtype=i2 wdtype=i2 {{.*}} nm_n=2 nm_m=4 {layer = "fc2"}

// Ternary and binary weights (one per-tensor scale, applied by the epilogue) add and
// subtract; codebook weights are indices (u2 for 4 entries, u4 for 16) into an i8 table in
// PARAM (`cb`), its segment counted as scales.
// TERNARY:  sparrow.segment "fc2.wgt.n0k0" kind=values dtype=i2 addr={{[0-9]+}} shape=[1, 16]
// TERNARY:  sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u8 addr={{[0-9]+}} shape=[1, 25]
// TERNARY:  sparrow.usgemm adtype=i8 wdtype=i2 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 fmt=csr meta=0 nnz=16 wfmt=ternary {layer = "fc2"}

// BINARY:   sparrow.segment "fc2.wgt" kind=values dtype=u1 addr={{[0-9]+}} shape=[8, 8]
// BINARY:   sparrow.gemm adtype=i8 wdtype=u1 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 wfmt=binary {layer = "fc2"}

// CODEBOOK: sparrow.segment "fc2.codebook" kind=scales dtype=i8 addr={{[0-9]+}} shape=[1, 4]
// CODEBOOK: sparrow.segment "fc2.wgt.n0k0" kind=values dtype=u2 addr={{[0-9]+}} shape=[1, 32]
// CODEBOOK: sparrow.segment "fc2.meta.n0k0" kind=metadata dtype=u1 addr={{[0-9]+}} shape=[8, 8]
// CODEBOOK: sparrow.usgemm adtype=i8 wdtype=u2 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 fmt=bitmask meta=0 nnz=32 wfmt=codebook cdtype=i8 cb=64 {layer = "fc2"}

// CB16:     sparrow.segment "fc2.codebook" kind=scales dtype=i8 addr={{[0-9]+}} shape=[1, 16]
// CB16:     sparrow.segment "fc2.wgt" kind=values dtype=u4 addr={{[0-9]+}} shape=[8, 8]
// CB16:     sparrow.gemm adtype=i8 wdtype=u4 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 wfmt=codebook cdtype=i8 cb=64 {layer = "fc2"}

// askip=relu: fc2's input is a ReLU output, so its GEMM skips zero activations.
// ASKIP:    sparrow.segment "fc2.wgt" kind=values dtype=i8 addr={{[0-9]+}} shape=[8, 8]
// ASKIP:    sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=64 wgt=0 m=1 k=8 n=8 accumulate=0 askip=1 {layer = "fc2"}

// A mode the target lacks is one error naming the layer (tile-layers checks first).
// ERR-F8: spaq-opt: error: layer 'fc1': target edge has no f8 GEMM mode
// ERR-CSR: spaq-opt: error: layer 'fc1': target edge has no csr decoder for unstructured sparsity


// The CLI flags reach the same decisions (the digits CNN on datacenter, program.s).
// CLI: # layer conv2
// CLI: bsgemm adtype=i8 wdtype=i2 {{.*}} br=4 bc=4 nb={{[0-9]+}} wfmt=ternary askip=1
// CLI: # layer fc1
// CLI: bsgemm adtype=i8 wdtype=i2 {{.*}} br=4 bc=4 nb={{[0-9]+}} wfmt=ternary askip=1
// CLI-ERR: spaq: error: layer 'conv1': target edge has no f8 GEMM mode
// CLI-PRECISION: spaq: error: precision 'int3' is not one of fp32, fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int8-dynamic, int4, int2, ternary, binary, codebook[-2|-4|-16|-256]
// CLI-SPARSITY: spaq: error: sparsity 'block-4': expected none, N:M (e.g. 2:4), block-RxC (e.g. block-4x4), unstructured-bitmask or unstructured-csr

func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x8xf32> {onnx.name = "out"}) {
  %w1 = onnx.Initializer "fc1.weight" = dense<[[2.041, -2.556, 0.418, -0.568, -0.453, -0.216, -2.020, -0.232], [-0.865, 3.323, 0.226, -0.353, -0.281, -0.668, -1.055, -0.391], [0.482, -0.239, 0.958, -0.200, 0.024, 1.546, 0.545, -0.505], [-0.183, 0.541, 1.935, -0.270, -0.244, 1.002, -0.886, -0.292], [0.883, 0.580, 0.092, 0.670, -2.828, 1.021, -0.960, -1.669], [0.276, 0.701, -0.445, -1.076, 0.026, -0.053, 1.406, 0.747], [0.194, 1.112, -0.206, -0.926, 0.584, 0.583, -0.215, -0.783], [0.229, -2.494, 0.690, 0.491, -1.639, 0.061, -0.964, 0.757]]> : tensor<8x8xf32> : tensor<8x8xf32>
  %b1 = onnx.Initializer "fc1.bias" = dense<[0.176, 0.074, 0.137, -0.108, -0.019, -0.081, 0.150, 0.066]> : tensor<8xf32> : tensor<8xf32>
  %y1 = onnx.Gemm(%x, %w1, %b1) {transB = 1 : i64, onnx.node = "fc1"} : (tensor<1x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<1x8xf32>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu1"} : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %w2 = onnx.Initializer "fc2.weight" = dense<[[-2.034, -0.914, 0.710, 1.156, -2.158, -0.498, 0.328, -0.609], [1.591, -1.191, 0.355, -1.048, 1.406, -0.022, -0.372, -1.718], [1.682, 0.753, 0.754, 1.138, 0.349, -0.639, -0.800, -0.800], [1.370, -1.460, -0.596, -0.321, 0.225, 0.575, -1.249, -1.730], [-0.004, 1.214, 0.757, 0.216, -0.317, 0.293, -0.243, 0.817], [-0.794, 0.134, -0.111, 0.543, 0.225, 2.550, 1.499, 1.497], [-2.040, -0.340, -0.609, 0.533, -2.279, 1.174, 1.067, -1.302], [-0.979, -0.801, 0.043, 0.641, 2.048, -0.197, 0.768, 0.155]]> : tensor<8x8xf32> : tensor<8x8xf32>
  %b2 = onnx.Initializer "fc2.bias" = dense<[-0.031, -0.045, 0.048, -0.070, -0.093, 0.048, 0.246, -0.025]> : tensor<8xf32> : tensor<8xf32>
  %y2 = onnx.Gemm(%r1, %w2, %b2) {transB = 1 : i64, onnx.node = "fc2"} : (tensor<1x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<1x8xf32>
  func.return %y2 : tensor<1x8xf32>
}

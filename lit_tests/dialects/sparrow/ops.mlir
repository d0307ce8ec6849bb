// RUN: spaq-opt %s | spaq-opt | filecheck %s
// RUN: SPAQ_ROUNDTRIP
// RUN: spaq-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

func.func @program() {
  sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 1, 8, 8]
  sparrow.segment "conv1.weight.values" kind=values dtype=i8 addr=256 shape=[8, 6]
  sparrow.segment "conv1.weight.meta" kind=metadata dtype=u2 addr=320 shape=[8, 6]
  sparrow.segment "conv1.params" kind=scales dtype=i32 addr=336 shape=[3, 8]
  sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=64 cols=1 rstride=1 cstride=64 {layer = "conv1"}
  sparrow.quant odtype=i8 src=0 dst=256 param=0 rows=64 cols=1
  sparrow.im2col dtype=i8 src=256 dst=512 c=1 h=8 w=8 kh=3 kw=3 sh=1 sw=1 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1
  sparrow.load buf=wgt dtype=i8 sp=0 dram=256 rows=8 cols=6 rstride=6 cstride=1
  sparrow.load buf=meta dtype=u2 sp=0 dram=320 rows=8 cols=6 rstride=8 cstride=1
  sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=512 wgt=0 m=64 k=9 n=8 accumulate=0 meta=0 nm_n=2 nm_m=4
  sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=1
  sparrow.gemm adtype=i8 wdtype=u1 acc=0 act=0 wgt=0 m=4 k=64 n=32 accumulate=0 wfmt=binary askip=1
  sparrow.bsgemm adtype=f16 wdtype=u4 acc=0 act=0 wgt=0 m=4 k=64 n=32 accumulate=0 meta=0 br=8 bc=8 nb=5 wfmt=codebook cdtype=f16 cb=64
  sparrow.usgemm adtype=i8 wdtype=i2 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=1 fmt=csr meta=0 nnz=100 wfmt=ternary
  sparrow.usgemm adtype=i8 wdtype=i4 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=0 fmt=bitmask meta=0 nnz=7
  sparrow.epilogue mode=requant odtype=i8 bias=1 relu=1 src=0 dst=0 param=0 rows=64 cols=8 zp=0
  sparrow.maxpool dtype=i8 src=0 dst=1024 c=8 h=8 w=8 kh=2 kw=2 sh=2 sw=2 pt=0 pl=0 pb=0 pr=0 dh=1 dw=1
  sparrow.softmax src=0 dst=64 rows=1 cols=10
  sparrow.store buf=act dtype=i8 sp=1024 dram=512 rows=16 cols=8 rstride=1 cstride=16
  sparrow.halt
  func.return
}

// CHECK:      sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 1, 8, 8]
// CHECK-NEXT: sparrow.segment "conv1.weight.values" kind=values dtype=i8 addr=256 shape=[8, 6]
// CHECK-NEXT: sparrow.segment "conv1.weight.meta" kind=metadata dtype=u2 addr=320 shape=[8, 6]
// CHECK-NEXT: sparrow.segment "conv1.params" kind=scales dtype=i32 addr=336 shape=[3, 8]
// CHECK-NEXT: sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=64 cols=1 rstride=1 cstride=64 {layer = "conv1"}
// CHECK-NEXT: sparrow.quant odtype=i8 src=0 dst=256 param=0 rows=64 cols=1
// CHECK-NEXT: sparrow.im2col dtype=i8 src=256 dst=512 c=1 h=8 w=8 kh=3 kw=3 sh=1 sw=1 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1
// CHECK-NEXT: sparrow.load buf=wgt dtype=i8 sp=0 dram=256 rows=8 cols=6 rstride=6 cstride=1
// CHECK-NEXT: sparrow.load buf=meta dtype=u2 sp=0 dram=320 rows=8 cols=6 rstride=8 cstride=1
// CHECK-NEXT: sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=512 wgt=0 m=64 k=9 n=8 accumulate=0 meta=0 nm_n=2 nm_m=4
// CHECK-NEXT: sparrow.gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=1
// CHECK-NEXT: sparrow.gemm adtype=i8 wdtype=u1 acc=0 act=0 wgt=0 m=4 k=64 n=32 accumulate=0 wfmt=binary askip=1
// CHECK-NEXT: sparrow.bsgemm adtype=f16 wdtype=u4 acc=0 act=0 wgt=0 m=4 k=64 n=32 accumulate=0 meta=0 br=8 bc=8 nb=5 wfmt=codebook cdtype=f16 cb=64
// CHECK-NEXT: sparrow.usgemm adtype=i8 wdtype=i2 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=1 fmt=csr meta=0 nnz=100 wfmt=ternary
// CHECK-NEXT: sparrow.usgemm adtype=i8 wdtype=i4 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=0 fmt=bitmask meta=0 nnz=7
// CHECK-NEXT: sparrow.epilogue mode=requant odtype=i8 bias=1 relu=1 src=0 dst=0 param=0 rows=64 cols=8 zp=0
// CHECK-NEXT: sparrow.maxpool dtype=i8 src=0 dst=1024 c=8 h=8 w=8 kh=2 kw=2 sh=2 sw=2 pt=0 pl=0 pb=0 pr=0 dh=1 dw=1
// CHECK-NEXT: sparrow.softmax src=0 dst=64 rows=1 cols=10
// CHECK-NEXT: sparrow.store buf=act dtype=i8 sp=1024 dram=512 rows=16 cols=8 rstride=1 cstride=16
// CHECK-NEXT: sparrow.halt

// GENERIC: "sparrow.gemm"() <{adtype = 0 : i64, wdtype = 0 : i64, acc = 0 : i64, act = 0 : i64, wgt = 0 : i64, m = 1 : i64, k = 64 : i64, n = 32 : i64, accumulate = 1 : i64}> : () -> ()
// GENERIC: "sparrow.gemm"() <{adtype = 3 : i64, wdtype = 9 : i64, acc = 0 : i64, act = 0 : i64, wgt = 0 : i64, m = 4 : i64, k = 64 : i64, n = 32 : i64, accumulate = 0 : i64, wfmt = 1 : i64, askip = 1 : i64}> : () -> ()
// GENERIC: "sparrow.halt"() : () -> ()

// RUN: spaq-opt %s | spaq-opt | filecheck %s
// RUN: SPAQ_ROUNDTRIP
// RUN: spaq-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// One of each vector-unit instruction: optional fields (types f32, scratchpad act, broadcast
// tile, imm 1.0 for vun / vred, axis 1) are left out and printed only when they differ;
// imm prints as float32 bits in hex.
func.func @program() {
  sparrow.vbin op=sub src=0 bcast=col src1=4096 dst=0 rows=128 cols=384
  sparrow.vbin op=mul dtype=i32 buf=acc src=0 bcast=group dtype1=f16 buf1=param src1=64 group=32 imm=0x3f000000 odtype=bf16 obuf=wgt dst=256 rows=4 cols=64
  sparrow.vun op=erf src=0 imm=0x3f3504f3 dst=8192 rows=128 cols=1536
  sparrow.vun op=rsqrt src=4096 imm=0x3f800000 dst=4096 rows=128 cols=1
  sparrow.vred op=sumsq axis=0 src=0 imm=0x3b2aaaab odtype=f16 obuf=param dst=0 rows=128 cols=384
  sparrow.vsel mdtype=u1 mbcast=row mask=512 src=0 bcast=imm imm=0xff800000 dst=0 rows=1536 cols=128
  sparrow.vquant odtype=i8 src=0 dst=1024 sbuf=param scale=0 rows=128 cols=384
  sparrow.vreq buf=acc src=0 odtype=i8 dst=0 rows=128 cols=128 mult=1073741824 shift=40 zp=251 relu=1 {layer = "attention"}
  sparrow.halt
  func.return
}

// CHECK:      sparrow.vbin op=sub src=0 bcast=col src1=4096 dst=0 rows=128 cols=384
// CHECK-NEXT: sparrow.vbin op=mul dtype=i32 buf=acc src=0 bcast=group dtype1=f16 buf1=param src1=64 group=32 imm=0x3f000000 odtype=bf16 obuf=wgt dst=256 rows=4 cols=64
// CHECK-NEXT: sparrow.vun op=erf src=0 imm=0x3f3504f3 dst=8192 rows=128 cols=1536
// CHECK-NEXT: sparrow.vun op=rsqrt src=4096 dst=4096 rows=128 cols=1
// CHECK-NEXT: sparrow.vred op=sumsq axis=0 src=0 imm=0x3b2aaaab odtype=f16 obuf=param dst=0 rows=128 cols=384
// CHECK-NEXT: sparrow.vsel mdtype=u1 mbcast=row mask=512 src=0 bcast=imm imm=0xff800000 dst=0 rows=1536 cols=128
// CHECK-NEXT: sparrow.vquant odtype=i8 src=0 dst=1024 sbuf=param scale=0 rows=128 cols=384
// CHECK-NEXT: sparrow.vreq buf=acc src=0 odtype=i8 dst=0 rows=128 cols=128 mult=1073741824 shift=40 zp=251 relu=1 {layer = "attention"}
// CHECK-NEXT: sparrow.halt

// GENERIC: "sparrow.vun"() <{op = 7 : i64, src = 0 : i64, imm = 1060439283 : i64, dst = 8192 : i64, rows = 128 : i64, cols = 1536 : i64}> : () -> ()

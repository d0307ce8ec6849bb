// RUN: spaq-opt %s -p 'schedule-tokens{target=edge}' | filecheck %s
// RUN: spaq-opt %s -p schedule-tokens -t sparrow-asm | filecheck %s --check-prefix=ASM

// Layer a computes exp(x) and stores it; layer b loads it back. The load queue may not run
// ahead of the store (read after write through DRAM), and the two queues are not
// neighbours: a sync in the compute queue relays the store's token to the load. The
// first load's token orders it before vun (read after write in ACT); vun's before the store.
// CHECK-LABEL: func.func @relay() {
// CHECK-NEXT:  sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 push_next=1 {layer = "a"}
// CHECK-NEXT:  sparrow.vun op=exp src=0 dst=64 rows=1 cols=8 pop_prev=1 push_next=1 {layer = "a"}
// CHECK-NEXT:  sparrow.store buf=act dtype=f32 sp=64 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_prev=1 push_prev=1 {layer = "a"}
// CHECK-NEXT:  sparrow.sync pop_next=1 push_prev=1 {layer = "b"}
// CHECK-NEXT:  sparrow.load buf=act dtype=f32 sp=128 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_next=1 {layer = "b"}
// CHECK-NEXT:  sparrow.halt
func.func @relay() {
  sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 {layer = "a"}
  sparrow.vun op=exp src=0 dst=64 rows=1 cols=8 {layer = "a"}
  sparrow.store buf=act dtype=f32 sp=64 dram=64 rows=1 cols=8 rstride=8 cstride=1 {layer = "a"}
  sparrow.load buf=act dtype=f32 sp=128 dram=64 rows=1 cols=8 rstride=8 cstride=1 {layer = "b"}
  sparrow.halt
  func.return
}

// Two GEMM tiles sharing the weight tile, the activation and accumulator tiles reused
// (single-buffered). The weight load's token also covers the activation load before it
// (a queue runs in order); the parameter load needs no token of its own until the
// epilogue; the second activation load must wait for the first GEMM to have read ACT
// 0..575 (write after read): the GEMM pushes to the load queue. Tokens already present
// (here a stray push_prev on the first load) are recomputed.
// CHECK-LABEL: func.func @tiles() {
// CHECK-NEXT:  sparrow.load buf=act dtype=i8 sp=0 dram=0 rows=64 cols=9 rstride=9 cstride=1{{$}}
// CHECK-NEXT:  sparrow.load buf=wgt dtype=i8 sp=0 dram=1152 rows=8 cols=9 rstride=9 cstride=1 push_next=1{{$}}
// CHECK-NEXT:  sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0 pop_prev=1 push_prev=1{{$}}
// CHECK-NEXT:  sparrow.load buf=param dtype=f32 sp=0 dram=1280 rows=1 cols=8 rstride=8 cstride=1 push_next=1{{$}}
// CHECK-NEXT:  sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=1024 param=0 rows=64 cols=8 zp=0 pop_prev=1 push_next=1{{$}}
// CHECK-NEXT:  sparrow.store buf=act dtype=f32 sp=1024 dram=2048 rows=64 cols=8 rstride=8 cstride=1 pop_prev=1 push_prev=1{{$}}
// CHECK-NEXT:  sparrow.load buf=act dtype=i8 sp=0 dram=576 rows=64 cols=9 rstride=9 cstride=1 pop_next=1 push_next=1{{$}}
// CHECK-NEXT:  sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0 pop_prev=1{{$}}
// CHECK-NEXT:  sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=1024 param=0 rows=64 cols=8 zp=0 pop_next=1 push_next=1{{$}}
// CHECK-NEXT:  sparrow.store buf=act dtype=f32 sp=1024 dram=4096 rows=64 cols=8 rstride=8 cstride=1 pop_prev=1{{$}}
// CHECK-NEXT:  sparrow.halt
func.func @tiles() {
  sparrow.load buf=act dtype=i8 sp=0 dram=0 rows=64 cols=9 rstride=9 cstride=1 push_prev=1
  sparrow.load buf=wgt dtype=i8 sp=0 dram=1152 rows=8 cols=9 rstride=9 cstride=1
  sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0
  sparrow.load buf=param dtype=f32 sp=0 dram=1280 rows=1 cols=8 rstride=8 cstride=1
  sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=1024 param=0 rows=64 cols=8 zp=0
  sparrow.store buf=act dtype=f32 sp=1024 dram=2048 rows=64 cols=8 rstride=8 cstride=1
  sparrow.load buf=act dtype=i8 sp=0 dram=576 rows=64 cols=9 rstride=9 cstride=1
  sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0
  sparrow.epilogue mode=dequant odtype=f32 bias=0 relu=0 src=0 dst=1024 param=0 rows=64 cols=8 zp=0
  sparrow.store buf=act dtype=f32 sp=1024 dram=4096 rows=64 cols=8 rstride=8 cstride=1
  sparrow.halt
  func.return
}

// The assembly text prints the flags last, when set; the sync opens layer b.
// ASM:      # layer a
// ASM-NEXT: load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 push_next=1
// ASM-NEXT: vun op=exp src=0 dst=64 rows=1 cols=8 pop_prev=1 push_next=1
// ASM-NEXT: store buf=act dtype=f32 sp=64 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_prev=1 push_prev=1
// ASM-NEXT: # layer b
// ASM-NEXT: sync pop_next=1 push_prev=1
// ASM-NEXT: load buf=act dtype=f32 sp=128 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_next=1
// ASM-NEXT: halt

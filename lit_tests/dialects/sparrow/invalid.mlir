// RUN: spaq-opt %s --split-input-file --verify-diagnostics | filecheck %s

// A field wider than its encoding is rejected by the verifier.
"sparrow.gemm"() <{adtype = 3 : i64, wdtype = 3 : i64, acc = 0 : i64, act = 0 : i64, wgt = 0 : i64, m = 70000 : i64, k = 9 : i64, n = 8 : i64, accumulate = 0 : i64}> : () -> ()
// CHECK: gemm: field m=70000 does not fit 16 bits

// -----

"sparrow.segment"() <{sym = "x", kind = "weights", dtype = 3 : i64, addr = 0 : i64, shape = [#builtin.int<4>]}> : () -> ()
// CHECK: segment kind must be one of input, output, activation, values, metadata, scales

// -----

"sparrow.load"() <{buf = 9 : i64, dtype = 3 : i64, sp = 0 : i64, dram = 0 : i64, rows = 1 : i64, cols = 1 : i64, rstride = 1 : i64, cstride = 1 : i64}> : () -> ()
// CHECK: load: field buf=9 does not fit 3 bits

// -----

// Optional GEMM fields are checked like the others.
"sparrow.usgemm"() <{adtype = 3 : i64, wdtype = 3 : i64, acc = 0 : i64, act = 0 : i64, wgt = 0 : i64, m = 1 : i64, k = 9 : i64, n = 8 : i64, accumulate = 0 : i64, fmt = 1 : i64, meta = 0 : i64, nnz = 3 : i64, wfmt = 4 : i64}> : () -> ()
// CHECK: usgemm: field wfmt=4 does not fit 2 bits

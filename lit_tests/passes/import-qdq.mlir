// RUN: spaq-opt %s --split-input-file -p import-qdq | filecheck %s

// A QDQ conv layer (as onnxruntime's quantize_static writes it): the input's Q -> DQ pair,
// int8 weights per output channel behind a DQ, an int32 bias in the scale s_x * s_w, and the
// output's Q -> DQ. s_x = 0.25, s_w = [0.5, 0.25]: the accumulator's scale is
// [0.125, 0.0625], the bias's own scale, so its integers are used as they are. Every consumer
// takes int8 (Relu, MaxPool and Flatten are re-quantized with the conv's scale s_y = 2, then
// the Gemm): the conv is requantized with s_x * s_w / s_y = [0.0625, 0.03125] and the ops
// between run on the int8 values. The Gemm (per-tensor weights, s_w = 0.125, float bias)
// feeds Softmax: it is dequantized with s_x * s_w = 2 * 0.125.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[B:[^ ]+]] = onnx.Initializer "conv1.bias_quantized" = dense<[100, -50]> : tensor<2xi32> : tensor<2xi32>
// CHECK-NEXT:  %[[X:[^ ]+]] = quant.quantize %x {scale = array<f32: 2.500000e-01>} : tensor<1x1x4x4xf32> -> tensor<1x1x4x4x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[WF:[^ ]+]] = onnx.Initializer "conv1.weight.qdq" : tensor<2x1x3x3xf32>
// CHECK-NEXT:  %[[W:[^ ]+]] = quant.quantize %[[WF]] {scale = array<f32: 5.000000e-01, 2.500000e-01>, axis = 0 : i64} : tensor<2x1x3x3xf32> -> tensor<2x1x3x3x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-NEXT:  %[[ACC:[^ ]+]] = quant.conv %[[X]], %[[W]], %[[B]] {onnx.node = "conv1", dilations = array<i64: 1, 1>, group = 1 : i64, kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>} : (tensor<1x1x4x4x!quant.q<si8:f32>>, tensor<2x1x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<2xi32>) -> tensor<1x2x4x4xi32>
// CHECK-NEXT:  %[[C:[^ ]+]] = quant.requantize %[[ACC]] {scale = array<f64: 6.250000e-02, 3.125000e-02>, axis = 1 : i64} : tensor<1x2x4x4xi32> -> tensor<1x2x4x4x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[R:[^ ]+]] = onnx.Relu(%[[C]]) {onnx.node = "relu1"} : (tensor<1x2x4x4x!quant.q<si8:f32>>) -> tensor<1x2x4x4x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[P:[^ ]+]] = onnx.MaxPool(%[[R]]) {{.*}} : (tensor<1x2x4x4x!quant.q<si8:f32>>) -> tensor<1x2x1x1x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[F:[^ ]+]] = onnx.Flatten(%[[P]]) {{.*}} : (tensor<1x2x1x1x!quant.q<si8:f32>>) -> tensor<1x2x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[W2F:[^ ]+]] = onnx.Initializer "fc.weight.qdq" : tensor<2x2xf32>
// CHECK-NEXT:  %[[W2:[^ ]+]] = quant.quantize %[[W2F]] {scale = array<f32: 1.250000e-01>} : tensor<2x2xf32> -> tensor<2x2x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[B2:[^ ]+]] = onnx.Initializer "fc.bias.i32" : tensor<2xi32>
// CHECK-NEXT:  %[[A2:[^ ]+]] = quant.gemm %[[F]], %[[W2]], %[[B2]] {onnx.node = "fc"} : (tensor<1x2x!quant.q<si8:f32>>, tensor<2x2x!quant.q<si8:f32>>, tensor<2xi32>) -> tensor<1x2xi32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = quant.dequantize %[[A2]] {scale = array<f32: 2.500000e-01, 2.500000e-01>, axis = 1 : i64} : tensor<1x2xi32> -> tensor<1x2xf32>
// CHECK-NEXT:  %[[SM:[^ ]+]] = onnx.Softmax(%[[Y]]) {{.*}} : (tensor<1x2xf32>) -> tensor<1x2xf32>
// CHECK-NEXT:  func.return %[[SM]] : tensor<1x2xf32>
// CHECK-NOT:   Linear
// CHECK:       // {{-----}}
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "probs"}) {
  %sx = onnx.Initializer "x_scale" = dense<0.25> : tensor<f32> : tensor<f32>
  %zx = onnx.Initializer "x_zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %xq = onnx.QuantizeLinear(%x, %sx, %zx) {onnx.node = "x_q"} : (tensor<1x1x4x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x1x4x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %sx, %zx) {onnx.node = "x_dq"} : (tensor<1x1x4x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x1x4x4xf32>
  %wq = onnx.Initializer "conv1.weight_quantized" = dense<[[[[1, -2, 3], [4, 127, -6], [7, 8, -128]]], [[[0, 1, 0], [1, -1, 1], [0, 1, 0]]]]> : tensor<2x1x3x3xsi8> : tensor<2x1x3x3xsi8>
  %sw = onnx.Initializer "conv1.weight_scale" = dense<[0.5, 0.25]> : tensor<2xf32> : tensor<2xf32>
  %zw = onnx.Initializer "conv1.weight_zero_point" = dense<0> : tensor<2xsi8> : tensor<2xsi8>
  %wd = onnx.DequantizeLinear(%wq, %sw, %zw) {axis = 0 : i64, onnx.node = "conv1.weight_dq"} : (tensor<2x1x3x3xsi8>, tensor<2xf32>, tensor<2xsi8>) -> tensor<2x1x3x3xf32>
  %bq = onnx.Initializer "conv1.bias_quantized" = dense<[100, -50]> : tensor<2xi32> : tensor<2xi32>
  %sb = onnx.Initializer "conv1.bias_scale" = dense<[0.125, 0.0625]> : tensor<2xf32> : tensor<2xf32>
  %zb = onnx.Initializer "conv1.bias_zero_point" = dense<0> : tensor<2xi32> : tensor<2xi32>
  %bd = onnx.DequantizeLinear(%bq, %sb, %zb) {axis = 0 : i64, onnx.node = "conv1.bias_dq"} : (tensor<2xi32>, tensor<2xf32>, tensor<2xi32>) -> tensor<2xf32>
  %c = onnx.Conv(%xd, %wd, %bd) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, onnx.node = "conv1"} : (tensor<1x1x4x4xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
  %sc = onnx.Initializer "conv1_scale" = dense<2.0> : tensor<f32> : tensor<f32>
  %zc = onnx.Initializer "conv1_zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %cq = onnx.QuantizeLinear(%c, %sc, %zc) {onnx.node = "conv1_q"} : (tensor<1x2x4x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x4x4xsi8>
  %cd = onnx.DequantizeLinear(%cq, %sc, %zc) {onnx.node = "conv1_dq"} : (tensor<1x2x4x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x4x4xf32>
  %r = onnx.Relu(%cd) {onnx.node = "relu1"} : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %rq = onnx.QuantizeLinear(%r, %sc, %zc) {onnx.node = "relu1_q"} : (tensor<1x2x4x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x4x4xsi8>
  %rd = onnx.DequantizeLinear(%rq, %sc, %zc) {onnx.node = "relu1_dq"} : (tensor<1x2x4x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x4x4xf32>
  %p = onnx.MaxPool(%rd) {kernel_shape = array<i64: 4, 4>, strides = array<i64: 4, 4>, onnx.node = "pool1"} : (tensor<1x2x4x4xf32>) -> tensor<1x2x1x1xf32>
  %pq = onnx.QuantizeLinear(%p, %sc, %zc) {onnx.node = "pool1_q"} : (tensor<1x2x1x1xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x1x1xsi8>
  %pd = onnx.DequantizeLinear(%pq, %sc, %zc) {onnx.node = "pool1_dq"} : (tensor<1x2x1x1xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x1x1xf32>
  %f = onnx.Flatten(%pd) {axis = 1 : i64, onnx.node = "flatten"} : (tensor<1x2x1x1xf32>) -> tensor<1x2xf32>
  %fq = onnx.QuantizeLinear(%f, %sc, %zc) {onnx.node = "flatten_q"} : (tensor<1x2xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2xsi8>
  %fd = onnx.DequantizeLinear(%fq, %sc, %zc) {onnx.node = "flatten_dq"} : (tensor<1x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2xf32>
  %w2q = onnx.Initializer "fc.weight_quantized" = dense<[[64, -64], [32, 127]]> : tensor<2x2xsi8> : tensor<2x2xsi8>
  %s2 = onnx.Initializer "fc.weight_scale" = dense<0.125> : tensor<f32> : tensor<f32>
  %z2 = onnx.Initializer "fc.weight_zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %w2d = onnx.DequantizeLinear(%w2q, %s2, %z2) {onnx.node = "fc.weight_dq"} : (tensor<2x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<2x2xf32>
  %b2 = onnx.Initializer "fc.bias" = dense<[1.0, -0.75]> : tensor<2xf32> : tensor<2xf32>
  %y = onnx.Gemm(%fd, %w2d, %b2) {transB = 1 : i64, onnx.node = "fc"} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %sy = onnx.Initializer "fc_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %yq = onnx.QuantizeLinear(%y, %sy, %zc) {onnx.node = "fc_q"} : (tensor<1x2xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2xsi8>
  %yd = onnx.DequantizeLinear(%yq, %sy, %zc) {onnx.node = "fc_dq"} : (tensor<1x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2xf32>
  %sm = onnx.Softmax(%yd) {axis = 1 : i64, onnx.node = "softmax"} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %sm : tensor<1x2xf32>
}

// -----

// A QDQ Gemm with transB = 0: W [K, N] with scales along axis 1 is stored transposed,
// W[N, K] per channel on axis 0; the float bias becomes i32 in the accumulator's scale. The
// Relu right after it is fused (Gemm -> Relu -> Q -> DQ). Its output feeds fc2 and a float
// Add: fc1 is dequantized, the Add takes the float, and fc2 quantizes it again with its
// input scale 0.25. fc2 (per-tensor weights) feeds the graph's output: dequantized.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[X:[^ ]+]] = quant.quantize %x {scale = array<f32: 5.000000e-01>} : tensor<2x4xf32> -> tensor<2x4x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[WF:[^ ]+]] = onnx.Initializer "fc1.weight.qdq" : tensor<3x4xf32>
// CHECK-NEXT:  %[[W:[^ ]+]] = quant.quantize %[[WF]] {scale = array<f32: 2.500000e-01, 5.000000e-01, 1.250000e-01>, axis = 0 : i64} : tensor<3x4xf32> -> tensor<3x4x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-NEXT:  %[[B:[^ ]+]] = onnx.Initializer "fc1.bias.i32" : tensor<3xi32>
// CHECK-NEXT:  %[[A:[^ ]+]] = quant.gemm %[[X]], %[[W]], %[[B]] {onnx.node = "fc1"} : (tensor<2x4x!quant.q<si8:f32>>, tensor<3x4x!quant.q<si8:f32, per_channel axis=0>>, tensor<3xi32>) -> tensor<2x3xi32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = quant.dequantize %[[A]] {scale = array<f32: 1.250000e-01, 2.500000e-01, 6.250000e-02>, axis = 1 : i64} : tensor<2x3xi32> -> tensor<2x3xf32>
// CHECK-NEXT:  %[[R:[^ ]+]] = onnx.Relu(%[[Y]]) {onnx.node = "relu1"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:  %[[RQ:[^ ]+]] = quant.quantize %[[R]] {scale = array<f32: 2.500000e-01>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[W2F:[^ ]+]] = onnx.Initializer "fc2.weight.qdq" : tensor<2x3xf32>
// CHECK-NEXT:  %[[W2:[^ ]+]] = quant.quantize %[[W2F]] {scale = array<f32: 5.000000e-01>} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[A2:[^ ]+]] = quant.gemm %[[RQ]], %[[W2]] {onnx.node = "fc2"} : (tensor<2x3x!quant.q<si8:f32>>, tensor<2x3x!quant.q<si8:f32>>) -> tensor<2x2xi32>
// CHECK-NEXT:  %[[Y2:[^ ]+]] = quant.dequantize %[[A2]] {scale = array<f32: 1.250000e-01, 1.250000e-01>, axis = 1 : i64} : tensor<2x2xi32> -> tensor<2x2xf32>
// CHECK-NEXT:  %[[S:[^ ]+]] = onnx.Add(%[[R]], %[[R]]) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:  func.return %[[Y2]], %[[S]] : tensor<2x2xf32>, tensor<2x3xf32>
// CHECK-NOT:   Linear
// CHECK:       // {{-----}}
func.func @main(%x: tensor<2x4xf32> {onnx.name = "input"}) -> (tensor<2x2xf32> {onnx.name = "out"}, tensor<2x3xf32> {onnx.name = "sum"}) {
  %sx = onnx.Initializer "x_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %z = onnx.Initializer "zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %xq = onnx.QuantizeLinear(%x, %sx, %z) : (tensor<2x4xf32>, tensor<f32>, tensor<si8>) -> tensor<2x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %sx, %z) : (tensor<2x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<2x4xf32>
  %w1q = onnx.Initializer "fc1.weight_quantized" = dense<[[1, -1, 2], [0, 3, 1], [4, 0, -2], [1, 1, 1]]> : tensor<4x3xsi8> : tensor<4x3xsi8>
  %s1 = onnx.Initializer "fc1.weight_scale" = dense<[0.25, 0.5, 0.125]> : tensor<3xf32> : tensor<3xf32>
  %z1 = onnx.Initializer "fc1.weight_zero_point" = dense<0> : tensor<3xsi8> : tensor<3xsi8>
  %w1d = onnx.DequantizeLinear(%w1q, %s1, %z1) {axis = 1 : i64} : (tensor<4x3xsi8>, tensor<3xf32>, tensor<3xsi8>) -> tensor<4x3xf32>
  %b1 = onnx.Initializer "fc1.bias" = dense<[1.0, 0.5, -3.0]> : tensor<3xf32> : tensor<3xf32>
  %y1 = onnx.Gemm(%xd, %w1d, %b1) {onnx.node = "fc1"} : (tensor<2x4xf32>, tensor<4x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu1"} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %s2 = onnx.Initializer "relu1_scale" = dense<0.25> : tensor<f32> : tensor<f32>
  %r1q = onnx.QuantizeLinear(%r1, %s2, %z) : (tensor<2x3xf32>, tensor<f32>, tensor<si8>) -> tensor<2x3xsi8>
  %r1d = onnx.DequantizeLinear(%r1q, %s2, %z) : (tensor<2x3xsi8>, tensor<f32>, tensor<si8>) -> tensor<2x3xf32>
  %w2q = onnx.Initializer "fc2.weight_quantized" = dense<[[2, -1, 1], [1, 1, -3]]> : tensor<2x3xsi8> : tensor<2x3xsi8>
  %s3 = onnx.Initializer "fc2.weight_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %w2d = onnx.DequantizeLinear(%w2q, %s3, %z) : (tensor<2x3xsi8>, tensor<f32>, tensor<si8>) -> tensor<2x3xf32>
  %y2 = onnx.Gemm(%r1d, %w2d) {transB = 1 : i64, onnx.node = "fc2"} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x2xf32>
  %s4 = onnx.Initializer "fc2_scale" = dense<0.0625> : tensor<f32> : tensor<f32>
  %y2q = onnx.QuantizeLinear(%y2, %s4, %z) : (tensor<2x2xf32>, tensor<f32>, tensor<si8>) -> tensor<2x2xsi8>
  %y2d = onnx.DequantizeLinear(%y2q, %s4, %z) : (tensor<2x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<2x2xf32>
  %sum = onnx.Add(%r1d, %r1d) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %y2d, %sum : tensor<2x2xf32>, tensor<2x3xf32>
}

// -----

// A MatMul of a rank-3 input by a constant becomes the Gemm between two Reshapes (the
// input is reshaped to [rows, K], then quantized). Its output goes Q(0.5) -> DQ -> Relu -> Q(0.25) -> DQ:
// the Relu is fused and the accumulator requantized once, straight to the Relu's scale:
// s_x * s_w / 0.25 = 0.5 * [0.25, 0.5, 0.125] / 0.25.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[S:[^ ]+]] = onnx.Initializer "shape.2d" : tensor<2xi64>
// CHECK-NEXT:  %[[X:[^ ]+]] = onnx.Reshape(%x, %[[S]]) : (tensor<1x2x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
// CHECK-NEXT:  %[[X2:[^ ]+]] = quant.quantize %[[X]] {scale = array<f32: 5.000000e-01>} : tensor<2x4xf32> -> tensor<2x4x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[WF:[^ ]+]] = onnx.Initializer "mm1.weight.qdq" : tensor<3x4xf32>
// CHECK-NEXT:  %[[W:[^ ]+]] = quant.quantize %[[WF]] {scale = array<f32: 2.500000e-01, 5.000000e-01, 1.250000e-01>, axis = 0 : i64}
// CHECK-NEXT:  %[[A:[^ ]+]] = quant.gemm %[[X2]], %[[W]] {onnx.node = "mm1"} : (tensor<2x4x!quant.q<si8:f32>>, tensor<3x4x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<2x3xi32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = quant.requantize %[[A]] {scale = array<f64: 5.000000e-01, 1.000000e+00, 2.500000e-01>, axis = 1 : i64} : tensor<2x3xi32> -> tensor<2x3x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[R:[^ ]+]] = onnx.Relu(%[[Y]]) {onnx.node = "relu"} : (tensor<2x3x!quant.q<si8:f32>>) -> tensor<2x3x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[S2:[^ ]+]] = onnx.Initializer "shape.nd" : tensor<3xi64>
// CHECK-NEXT:  %[[R3:[^ ]+]] = onnx.Reshape(%[[R]], %[[S2]]) : (tensor<2x3x!quant.q<si8:f32>>, tensor<3xi64>) -> tensor<1x2x3x!quant.q<si8:f32>>
// CHECK-NEXT:  %[[S3:[^ ]+]] = onnx.Initializer "shape.2d{{.*}}" : tensor<2xi64>
// CHECK-NEXT:  %[[R2:[^ ]+]] = onnx.Reshape(%[[R3]], %[[S3]]) : (tensor<1x2x3x!quant.q<si8:f32>>, tensor<2xi64>) -> tensor<2x3x!quant.q<si8:f32>>
// CHECK:       %[[A2:[^ ]+]] = quant.gemm %[[R2]], %{{[^ ]+}} {onnx.node = "mm2"}
// CHECK-NEXT:  %[[Y2:[^ ]+]] = quant.dequantize %[[A2]] {scale = array<f32: 1.250000e-01, 1.250000e-01>, axis = 1 : i64} : tensor<2x2xi32> -> tensor<2x2xf32>
// CHECK-NEXT:  %[[S4:[^ ]+]] = onnx.Initializer "shape.nd{{.*}}" : tensor<3xi64>
// CHECK-NEXT:  %[[OUT:[^ ]+]] = onnx.Reshape(%[[Y2]], %[[S4]]) : (tensor<2x2xf32>, tensor<3xi64>) -> tensor<1x2x2xf32>
// CHECK-NEXT:  func.return %[[OUT]] : tensor<1x2x2xf32>
// CHECK-NOT:   Linear
// CHECK:       // {{-----}}
func.func @main(%x: tensor<1x2x4xf32> {onnx.name = "input"}) -> (tensor<1x2x2xf32> {onnx.name = "out"}) {
  %sx = onnx.Initializer "x_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %z = onnx.Initializer "zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %xq = onnx.QuantizeLinear(%x, %sx, %z) : (tensor<1x2x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %sx, %z) : (tensor<1x2x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x4xf32>
  %w1q = onnx.Initializer "mm1.weight_quantized" = dense<[[1, -1, 2], [0, 3, 1], [4, 0, -2], [1, 1, 1]]> : tensor<4x3xsi8> : tensor<4x3xsi8>
  %s1 = onnx.Initializer "mm1.weight_scale" = dense<[0.25, 0.5, 0.125]> : tensor<3xf32> : tensor<3xf32>
  %w1d = onnx.DequantizeLinear(%w1q, %s1) {axis = 1 : i64} : (tensor<4x3xsi8>, tensor<3xf32>) -> tensor<4x3xf32>
  %y1 = onnx.MatMul(%xd, %w1d) {onnx.node = "mm1"} : (tensor<1x2x4xf32>, tensor<4x3xf32>) -> tensor<1x2x3xf32>
  %sy = onnx.Initializer "mm1_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %y1q = onnx.QuantizeLinear(%y1, %sy, %z) : (tensor<1x2x3xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x3xsi8>
  %y1d = onnx.DequantizeLinear(%y1q, %sy, %z) : (tensor<1x2x3xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x3xf32>
  %r = onnx.Relu(%y1d) {onnx.node = "relu"} : (tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %sr = onnx.Initializer "relu_scale" = dense<0.25> : tensor<f32> : tensor<f32>
  %rq = onnx.QuantizeLinear(%r, %sr, %z) : (tensor<1x2x3xf32>, tensor<f32>, tensor<si8>) -> tensor<1x2x3xsi8>
  %rd = onnx.DequantizeLinear(%rq, %sr, %z) : (tensor<1x2x3xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x2x3xf32>
  %w2q = onnx.Initializer "mm2.weight_quantized" = dense<[[2, -1], [1, 1], [-3, 0]]> : tensor<3x2xsi8> : tensor<3x2xsi8>
  %s2 = onnx.Initializer "mm2.weight_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %w2d = onnx.DequantizeLinear(%w2q, %s2, %z) : (tensor<3x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<3x2xf32>
  %y2 = onnx.MatMul(%rd, %w2d) {onnx.node = "mm2"} : (tensor<1x2x3xf32>, tensor<3x2xf32>) -> tensor<1x2x2xf32>
  func.return %y2 : tensor<1x2x2xf32>
}

// -----

// Left as float ops: weights with a non-zero zero point (asymmetric), and uint8 activations
// with zero point 128 — Sparrow's integer layers take zero point 0. Nothing changes.
// CHECK-LABEL: func.func @main
// CHECK-NOT:   quant.
// CHECK:       onnx.DequantizeLinear(%wq, %sw, %zw) {axis = 0 : i64}
// CHECK:       onnx.Gemm(%xd, %wd) {transB = 1 : i64, onnx.node = "asym"}
// CHECK:       onnx.QuantizeLinear(%x, %su, %zu) : (tensor<1x4xf32>, tensor<f32>, tensor<ui8>) -> tensor<1x4xui8>
// CHECK:       onnx.Gemm(%ud, %w2d) {transB = 1 : i64, onnx.node = "u8act"}
// CHECK-NOT:   quant.
func.func @main(%x: tensor<1x4xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}, tensor<1x2xf32> {onnx.name = "out2"}) {
  %sx = onnx.Initializer "x_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %z = onnx.Initializer "zero_point" = dense<0> : tensor<si8> : tensor<si8>
  %xq = onnx.QuantizeLinear(%x, %sx, %z) : (tensor<1x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %sx, %z) : (tensor<1x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x4xf32>
  %wq = onnx.Initializer "asym.weight_quantized" = dense<[[1, -1, 2, 0], [0, 3, 1, 1]]> : tensor<2x4xsi8> : tensor<2x4xsi8>
  %sw = onnx.Initializer "asym.weight_scale" = dense<[0.25, 0.5]> : tensor<2xf32> : tensor<2xf32>
  %zw = onnx.Initializer "asym.weight_zero_point" = dense<[1, 0]> : tensor<2xsi8> : tensor<2xsi8>
  %wd = onnx.DequantizeLinear(%wq, %sw, %zw) {axis = 0 : i64} : (tensor<2x4xsi8>, tensor<2xf32>, tensor<2xsi8>) -> tensor<2x4xf32>
  %y = onnx.Gemm(%xd, %wd) {transB = 1 : i64, onnx.node = "asym"} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  %su = onnx.Initializer "u_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %zu = onnx.Initializer "u_zero_point" = dense<128> : tensor<ui8> : tensor<ui8>
  %uq = onnx.QuantizeLinear(%x, %su, %zu) : (tensor<1x4xf32>, tensor<f32>, tensor<ui8>) -> tensor<1x4xui8>
  %ud = onnx.DequantizeLinear(%uq, %su, %zu) : (tensor<1x4xui8>, tensor<f32>, tensor<ui8>) -> tensor<1x4xf32>
  %w2q = onnx.Initializer "u8act.weight_quantized" = dense<[[1, -1, 2, 0], [0, 3, 1, 1]]> : tensor<2x4xsi8> : tensor<2x4xsi8>
  %zw2 = onnx.Initializer "u8act.weight_zero_point" = dense<0> : tensor<2xsi8> : tensor<2xsi8>
  %w2d = onnx.DequantizeLinear(%w2q, %sw, %zw2) {axis = 0 : i64} : (tensor<2x4xsi8>, tensor<2xf32>, tensor<2xsi8>) -> tensor<2x4xf32>
  %y2 = onnx.Gemm(%ud, %w2d) {transB = 1 : i64, onnx.node = "u8act"} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  func.return %y, %y2 : tensor<1x2xf32>, tensor<1x2xf32>
}

// -----

// Opset 21's QuantizeLinear may name its int8 output type instead of giving a zero point
// (`output_dtype` = INT8): zero point 0, the same pattern.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:  %[[X:[^ ]+]] = quant.quantize %x {scale = array<f32: 5.000000e-01>} : tensor<1x4xf32> -> tensor<1x4x!quant.q<si8:f32>>
// CHECK:       %[[A:[^ ]+]] = quant.gemm %[[X]], %{{[^ ]+}} {onnx.node = "fc"} : (tensor<1x4x!quant.q<si8:f32>>, tensor<2x4x!quant.q<si8:f32>>) -> tensor<1x2xi32>
// CHECK-NEXT:  %[[Y:[^ ]+]] = quant.dequantize %[[A]] {scale = array<f32: 1.250000e-01, 1.250000e-01>, axis = 1 : i64} : tensor<1x2xi32> -> tensor<1x2xf32>
// CHECK-NEXT:  func.return %[[Y]] : tensor<1x2xf32>
func.func @main(%x: tensor<1x4xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %sx = onnx.Initializer "x_scale" = dense<0.5> : tensor<f32> : tensor<f32>
  %xq = onnx.QuantizeLinear(%x, %sx) {output_dtype = 3 : i64} : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %sx) : (tensor<1x4xsi8>, tensor<f32>) -> tensor<1x4xf32>
  %wq = onnx.Initializer "fc21.weight_quantized" = dense<[[1, -1, 2, 0], [0, 3, 1, 1]]> : tensor<2x4xsi8> : tensor<2x4xsi8>
  %sw = onnx.Initializer "fc21.weight_scale" = dense<0.25> : tensor<f32> : tensor<f32>
  %wd = onnx.DequantizeLinear(%wq, %sw) : (tensor<2x4xsi8>, tensor<f32>) -> tensor<2x4xf32>
  %y = onnx.Gemm(%xd, %wd) {transB = 1 : i64, onnx.node = "fc"} : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// A Q -> DQ pair that is not a layer's output, with only int8 consumers (here through
// MaxPool and Relu re-quantized with the same scale): the pairs go, the ops between run in
// float, and the conv quantizes its input with that scale — the integers the QDQ graph has,
// since rounding to one grid commutes with MaxPool and Relu.
// CHECK-LABEL: func.func @main
// CHECK-NOT:   Linear
// CHECK:       %[[P:[^ ]+]] = onnx.MaxPool(%x) {{.*}} : (tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf32>
// CHECK-NEXT:  %[[R:[^ ]+]] = onnx.Relu(%[[P]]) : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
// CHECK-NOT:   Linear
// CHECK:       %[[RQ:[^ ]+]] = quant.quantize %[[R]] {scale = array<f32: 5.000000e-01>} : tensor<1x1x2x2xf32> -> tensor<1x1x2x2x!quant.q<si8:f32>>
// CHECK:       quant.conv %[[RQ]], %{{[^ ]+}} {onnx.node = "conv9"
// CHECK-NOT:   Linear
func.func @main(%x: tensor<1x1x4x4xf32> {onnx.name = "input"}) -> (tensor<1x1x2x2xf32> {onnx.name = "out"}) {
  %s = onnx.Initializer "s9" = dense<0.5> : tensor<f32> : tensor<f32>
  %z = onnx.Initializer "z9" = dense<0> : tensor<si8> : tensor<si8>
  %xq = onnx.QuantizeLinear(%x, %s, %z) : (tensor<1x1x4x4xf32>, tensor<f32>, tensor<si8>) -> tensor<1x1x4x4xsi8>
  %xd = onnx.DequantizeLinear(%xq, %s, %z) : (tensor<1x1x4x4xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x1x4x4xf32>
  %p = onnx.MaxPool(%xd) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x1x4x4xf32>) -> tensor<1x1x2x2xf32>
  %pq = onnx.QuantizeLinear(%p, %s, %z) : (tensor<1x1x2x2xf32>, tensor<f32>, tensor<si8>) -> tensor<1x1x2x2xsi8>
  %pd = onnx.DequantizeLinear(%pq, %s, %z) : (tensor<1x1x2x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x1x2x2xf32>
  %r = onnx.Relu(%pd) : (tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
  %rq = onnx.QuantizeLinear(%r, %s, %z) : (tensor<1x1x2x2xf32>, tensor<f32>, tensor<si8>) -> tensor<1x1x2x2xsi8>
  %rd = onnx.DequantizeLinear(%rq, %s, %z) : (tensor<1x1x2x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x1x2x2xf32>
  %wq = onnx.Initializer "conv9.weight_quantized" = dense<[[[[1, 2], [3, 4]]]]> : tensor<1x1x2x2xsi8> : tensor<1x1x2x2xsi8>
  %sw = onnx.Initializer "conv9.weight_scale" = dense<0.25> : tensor<f32> : tensor<f32>
  %wd = onnx.DequantizeLinear(%wq, %sw, %z) : (tensor<1x1x2x2xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x1x2x2xf32>
  %c = onnx.Conv(%rd, %wd) {kernel_shape = array<i64: 2, 2>, pads = array<i64: 1, 1, 0, 0>, onnx.node = "conv9"} : (tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32>
  func.return %c : tensor<1x1x2x2xf32>
}

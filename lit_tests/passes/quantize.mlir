// The file is chunks separated by `// -----`, compiled one at a time: awk prints chunk n.
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | spaq-opt -p 'quantize{calibration="%inputs/calib_1x8.npz"}' | filecheck %s
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | not spaq-opt -p quantize 2>&1 | filecheck %s --check-prefix=ERR-NOCALIB
// RUN: awk '/^\/\/ -----$/{i++; next} i==0' %s | not spaq-opt -p 'quantize{calibration="%inputs/no_such_file.npz"}' 2>&1 | filecheck %s --check-prefix=ERR-MISSING
// RUN: awk '/^\/\/ -----$/{i++; next} i==1' %s | spaq-opt -p quantize | filecheck %s --check-prefix=FP32
// RUN: awk '/^\/\/ -----$/{i++; next} i==2' %s | not spaq-opt -p 'quantize{calibration="%inputs/calib_1x8.npz"}' 2>&1 | filecheck %s --check-prefix=ERR-INT4

// conv1 -> relu -> maxpool -> flatten -> fc1 -> relu -> fc2 -> softmax, every layer int8.
// calib_1x8.npz holds 4 samples of this [1, 1, 2, 4] input with max|x| = 1.27: s_x = 0.01.
// Weights are quantized per output channel, s_w[c] = max|W[c]| / 127: conv1 [2, 1.5] / 127,
// fc1 [2, 1, 2] / 127, fc2 [1, 0.75] / 127. Biases become i32 in the accumulator's scale.
// conv1 feeds only int8 consumers (Relu, MaxPool, Flatten keep the scale; fc1 is int8): it is
// requantized with s_y = max relu(conv1) / 127 = 2.975 / 127, the scale [s_x * s_w / s_y] =
// [0.00672269, 0.00504202]; fc1 likewise with max relu(fc1) = 4.031875 over the samples;
// fc2 feeds Softmax (fp32): it is dequantized with s_x(fc2) * s_w = (4.031875 / 127) * s_w.
// CHECK-LABEL: func.func @main
// CHECK:      %[[X:[^ ]+]] = quant.quantize %x {scale = array<f32: 1.000000e-02>} : tensor<1x1x2x4xf32> -> tensor<1x1x2x4x!quant.q<si8:f32>>
// CHECK-NEXT: %[[WC:[^ ]+]] = quant.quantize %wc {scale = array<f32: 0.0157480314, 0.0118110236>, axis = 0 : i64} : tensor<2x1x3x3xf32> -> tensor<2x1x3x3x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-NEXT: %[[BC:[^ ]+]] = onnx.Initializer "conv1.bias.i32" : tensor<2xi32>
// CHECK-NEXT: %[[ACC:[^ ]+]] = quant.conv %[[X]], %[[WC]], %[[BC]] {onnx.node = "conv1", spaq.compression = {{{.*}}}, dilations = array<i64: 1, 1>, group = 1 : i64, kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 1, 1>}
// CHECK-SAME:   : (tensor<1x1x2x4x!quant.q<si8:f32>>, tensor<2x1x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<2xi32>) -> tensor<1x2x2x4xi32>
// CHECK-NEXT: %[[C:[^ ]+]] = quant.requantize %[[ACC]] {scale = array<f64: 0.0067226891651260261, 0.00504201687384452>, axis = 1 : i64} : tensor<1x2x2x4xi32> -> tensor<1x2x2x4x!quant.q<si8:f32>>
// CHECK-NEXT: %[[R:[^ ]+]] = onnx.Relu(%[[C]]) {onnx.node = "relu1"} : (tensor<1x2x2x4x!quant.q<si8:f32>>) -> tensor<1x2x2x4x!quant.q<si8:f32>>
// CHECK-NEXT: %[[P:[^ ]+]] = onnx.MaxPool(%[[R]]) {{.*}} : (tensor<1x2x2x4x!quant.q<si8:f32>>) -> tensor<1x2x1x2x!quant.q<si8:f32>>
// CHECK-NEXT: %[[F:[^ ]+]] = onnx.Flatten(%[[P]]) {{.*}} : (tensor<1x2x1x2x!quant.q<si8:f32>>) -> tensor<1x4x!quant.q<si8:f32>>
// fc1's input is already int8 (conv1's scale carried through): no new quant.quantize of it.
// The f32 bias the i32 one replaced is gone (dce).
// CHECK-NEXT: %w1 = onnx.Initializer "fc1.weight" = dense<
// CHECK-NOT:  "fc1.bias" = dense<
// CHECK-NEXT: %[[W1:[^ ]+]] = quant.quantize %w1 {scale = array<f32: 0.0157480314, 0.00787401572, 0.0157480314>, axis = 0 : i64} : tensor<3x4xf32> -> tensor<3x4x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-NEXT: %[[B1:[^ ]+]] = onnx.Initializer "fc1.bias.i32" : tensor<3xi32>
// CHECK-NEXT: %[[A1:[^ ]+]] = quant.gemm %[[F]], %[[W1]], %[[B1]] {{.*}} : (tensor<1x4x!quant.q<si8:f32>>, tensor<3x4x!quant.q<si8:f32, per_channel axis=0>>, tensor<3xi32>) -> tensor<1x3xi32>
// CHECK-NEXT: %[[Y1:[^ ]+]] = quant.requantize %[[A1]] {scale = array<f64: 0.011620002111627442, 0.0058100010558137212, 0.011620002111627442>, axis = 1 : i64} : tensor<1x3xi32> -> tensor<1x3x!quant.q<si8:f32>>
// CHECK-NEXT: %[[R1:[^ ]+]] = onnx.Relu(%[[Y1]]) {onnx.node = "relu2"} : (tensor<1x3x!quant.q<si8:f32>>) -> tensor<1x3x!quant.q<si8:f32>>
// CHECK-NEXT: %w2 = onnx.Initializer "fc2.weight" = dense<
// CHECK-NEXT: %[[W2:[^ ]+]] = quant.quantize %w2 {scale = array<f32: 0.00787401572, 0.00590551179>, axis = 0 : i64} : tensor<2x3xf32> -> tensor<2x3x!quant.q<si8:f32, per_channel axis=0>>
// CHECK-NEXT: %[[A2:[^ ]+]] = quant.gemm %[[R1]], %[[W2]] {{.*}} : (tensor<1x3x!quant.q<si8:f32>>, tensor<2x3x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<1x2xi32>
// CHECK-NEXT: %[[Y2:[^ ]+]] = quant.dequantize %[[A2]] {scale = array<f32: 0.000249976729, 0.000187482539>, axis = 1 : i64} : tensor<1x2xi32> -> tensor<1x2xf32>
// CHECK-NEXT: %[[SM:[^ ]+]] = onnx.Softmax(%[[Y2]]) {{.*}} : (tensor<1x2xf32>) -> tensor<1x2xf32>
// CHECK-NEXT: func.return %[[SM]] : tensor<1x2xf32>
// CHECK-NOT:  onnx.Conv
// CHECK-NOT:  onnx.Gemm

// ERR-NOCALIB: spaq-opt: error: quantize needs calibration data: calibration=<file.npz>
// ERR-MISSING: spaq-opt: error: calibration file '{{.*}}Inputs/no_such_file.npz' does not exist
func.func @main(%x: tensor<1x1x2x4xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "probs"}) {
  %wc = onnx.Initializer "conv1.weight" = dense<[[[[0.5, -1.0, 0.25], [1.0, 2.0, -0.5], [0.0, 0.75, 1.0]]], [[[-1.0, 0.5, 0.0], [0.25, -0.5, 1.5], [1.0, 0.0, -0.25]]]]> : tensor<2x1x3x3xf32> : tensor<2x1x3x3xf32>
  %bc = onnx.Initializer "conv1.bias" = dense<[0.1, -0.2]> : tensor<2xf32> : tensor<2xf32>
  %c = onnx.Conv(%x, %wc, %bc) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, onnx.node = "conv1", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x1x2x4xf32>, tensor<2x1x3x3xf32>, tensor<2xf32>) -> tensor<1x2x2x4xf32>
  %r = onnx.Relu(%c) {onnx.node = "relu1"} : (tensor<1x2x2x4xf32>) -> tensor<1x2x2x4xf32>
  %p = onnx.MaxPool(%r) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, onnx.node = "pool1"} : (tensor<1x2x2x4xf32>) -> tensor<1x2x1x2xf32>
  %f = onnx.Flatten(%p) {axis = 1 : i64, onnx.node = "flatten"} : (tensor<1x2x1x2xf32>) -> tensor<1x4xf32>
  %w1 = onnx.Initializer "fc1.weight" = dense<[[1.0, -0.5, 0.25, 2.0], [-1.0, 1.0, 0.5, 0.0], [0.5, 0.5, -2.0, 1.0]]> : tensor<3x4xf32> : tensor<3x4xf32>
  %b1 = onnx.Initializer "fc1.bias" = dense<[0.0, 0.25, -0.25]> : tensor<3xf32> : tensor<3xf32>
  %y1 = onnx.Gemm(%f, %w1, %b1) {transB = 1 : i64, onnx.node = "fc1", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  %r1 = onnx.Relu(%y1) {onnx.node = "relu2"} : (tensor<1x3xf32>) -> tensor<1x3xf32>
  %w2 = onnx.Initializer "fc2.weight" = dense<[[1.0, -1.0, 0.5], [0.25, 0.5, -0.75]]> : tensor<2x3xf32> : tensor<2x3xf32>
  %y2 = onnx.Gemm(%r1, %w2) {transB = 1 : i64, onnx.node = "fc2", spaq.compression = {weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : (tensor<1x3xf32>, tensor<2x3xf32>) -> tensor<1x2xf32>
  %sm = onnx.Softmax(%y2) {axis = 1 : i64, onnx.node = "softmax"} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %sm : tensor<1x2xf32>
}

// -----

// No layer asks for int8 (fc3 only for sparsity): nothing changes and no calibration is needed.
// FP32:      onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc3", spaq.compression = {sparsity = #sparse.nm<2:4>}} : (tensor<1x8xf32>, tensor<2x8xf32>) -> tensor<1x2xf32>
// FP32-NOT:  quant.
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc3.weight" : tensor<2x8xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc3", spaq.compression = {sparsity = #sparse.nm<2:4>}} : (tensor<1x8xf32>, tensor<2x8xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----

// Integer layers need their scales to factor out of the sum: per-group weights do not.
// ERR-INT4: spaq-opt: error: layer 'fc4': integer layers take symmetric signed weights per tensor or per output channel with int8 / int4 / int2 per-tensor or int8 per-token activations, got !quant.q<si4:f32, per_group axis=1 group=4> / !quant.q<si8:f32>
func.func @main(%x: tensor<1x8xf32> {onnx.name = "input"}) -> (tensor<1x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc4.weight" = dense<0.5> : tensor<2x8xf32> : tensor<2x8xf32>
  %y = onnx.Gemm(%x, %w) {transB = 1 : i64, onnx.node = "fc4", spaq.compression = {weights = !quant.q<si4:f32, per_group axis=1 group=4>, activations = !quant.q<si8:f32>}} : (tensor<1x8xf32>, tensor<2x8xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}

// -----
// RUN: awk '/^\/\/ -----$/{i++; next} i==3' %s | spaq-opt -p 'choose-compression{precision=int8-dynamic},quantize' | filecheck %s --check-prefix=TOKEN
// Per-token dynamic activations need no calibration: the row scales are computed at run
// time, the accumulator is dequantized with them, and the float bias is added after.
func.func @main(%x: tensor<4x8xf32> {onnx.name = "input"}) -> (tensor<4x2xf32> {onnx.name = "out"}) {
  %w = onnx.Initializer "fc.weight" = dense<[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]> : tensor<2x8xf32> : tensor<2x8xf32>
  %b = onnx.Initializer "fc.bias" = dense<[0.5, -0.5]> : tensor<2xf32> : tensor<2xf32>
  %y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64, onnx.node = "fc"} : (tensor<4x8xf32>, tensor<2x8xf32>, tensor<2xf32>) -> tensor<4x2xf32>
  func.return %y : tensor<4x2xf32>
}
// TOKEN:      %[[Q:[^ ]+]], %[[S:[^ ]+]] = quant.quantize_dynamic %x : tensor<4x8xf32> -> tensor<4x8x!quant.q<si8:f32, per_token>>, tensor<4x1xf32>
// TOKEN:      %[[W:[^ ]+]] = quant.quantize %{{[^ ]+}} {scale = array<f32: 0.00787401572, 0.0157480314>, axis = 0 : i64}
// TOKEN-NEXT: %[[A:[^ ]+]] = quant.gemm %[[Q]], %[[W]] {{.*}} : (tensor<4x8x!quant.q<si8:f32, per_token>>, tensor<2x8x!quant.q<si8:f32, per_channel axis=0>>) -> tensor<4x2xi32>
// TOKEN-NEXT: %[[D:[^ ]+]] = quant.dequantize %[[A]], %[[S]] {scale = array<f32: 0.00787401572, 0.0157480314>, axis = 1 : i64} : tensor<4x2xi32>, tensor<4x1xf32> -> tensor<4x2xf32>
// TOKEN-NEXT: %{{[^ ]+}} = onnx.Add(%[[D]], %b) : (tensor<4x2xf32>, tensor<2xf32>) -> tensor<4x2xf32>

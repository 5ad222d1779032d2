#pragma once
// Everything in sumi. Include individual headers to compile less.
#include "sumi/version.hpp"

#include "sumi/kernels/conv.hpp"
#include "sumi/kernels/elementwise.hpp"
#include "sumi/kernels/fast_math.hpp"
#include "sumi/kernels/linear.hpp"
#include "sumi/kernels/threading.hpp"

#include "sumi/tensor/allocator.hpp"
#include "sumi/tensor/arithmetic.hpp"
#include "sumi/tensor/random.hpp"
#include "sumi/tensor/shape.hpp"
#include "sumi/tensor/tensor.hpp"

#include "sumi/autograd/grad_mode.hpp"
#include "sumi/autograd/gradcheck.hpp"
#include "sumi/autograd/variable.hpp"

#include "sumi/ops/batch_norm.hpp"
#include "sumi/ops/conv.hpp"
#include "sumi/ops/dropout.hpp"
#include "sumi/ops/elementwise.hpp"
#include "sumi/ops/linalg.hpp"
#include "sumi/ops/loss.hpp"
#include "sumi/ops/reduction.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/ops/softmax.hpp"

#include "sumi/nn/activation.hpp"
#include "sumi/nn/batch_norm.hpp"
#include "sumi/nn/conv.hpp"
#include "sumi/nn/dropout.hpp"
#include "sumi/nn/flatten.hpp"
#include "sumi/nn/init.hpp"
#include "sumi/nn/linear.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/relu_fusable.hpp"
#include "sumi/nn/sequential.hpp"
#include "sumi/nn/serialize.hpp"
#include "sumi/nn/state_dict.hpp"

#include "sumi/optim/adam.hpp"
#include "sumi/optim/optimizer.hpp"
#include "sumi/optim/sgd.hpp"

#include "sumi/io/safetensors.hpp"

#include "sumi/data/data_loader.hpp"
#include "sumi/data/dataset.hpp"
#include "sumi/data/fashion_mnist.hpp"
#include "sumi/data/idx.hpp"
#include "sumi/data/image_folder.hpp"

#include "sumi/analysis/embedding_metrics.hpp"
#include "sumi/analysis/tsne.hpp"

#include "sumi/tune/grid_results.hpp"
#include "sumi/tune/grid_search.hpp"
#include "sumi/tune/parameter_grid.hpp"

#include "sumi/plot/confusion_matrix.hpp"
#include "sumi/plot/image_grid.hpp"
#include "sumi/plot/line_chart.hpp"
#include "sumi/plot/scatter_chart.hpp"

#include "sumi/util/atomic_file.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/json_file.hpp"
#include "sumi/util/memory.hpp"
#include "sumi/util/progress_bar.hpp"
#include "sumi/util/timer.hpp"

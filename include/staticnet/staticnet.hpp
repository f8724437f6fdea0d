#pragma once
/// @file
/// The single-process library in one include. Opt-in, included on purpose: data
/// parallelism over MPI (<staticnet/comm/mpi.hpp>, link staticnet::mpi) and SVG charts of a
/// training history (<staticnet/train/history_chart.hpp>).

#include "core/aligned_buffer.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/thread_pool.hpp"
#include "comm/launch.hpp"
#include "comm/local.hpp"
#include "data/dataset.hpp"
#include "data/idx.hpp"
#include "data/loader.hpp"
#include "data/shard_format.hpp"
#include "data/shard_set.hpp"
#include "layers/activations.hpp"
// batch_norm and dropout take float template arguments, which clang < 18 does not support;
// the rest of the library builds with such compilers too.
#if defined(__cpp_nontype_template_args) && __cpp_nontype_template_args >= 201911L
#include "layers/batch_norm.hpp"
#include "layers/dropout.hpp"
#endif
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"
#include "layers/flatten.hpp"
#include "layers/input.hpp"
#include "layers/max_pool2d.hpp"
#include "model/sequential.hpp"
#include "model/summary.hpp"
#include "train/callbacks.hpp"
#include "train/early_stopping.hpp"
#include "train/history_io.hpp"
#include "train/schedules.hpp"
#include "train/history.hpp"
#include "train/losses.hpp"
#include "train/metrics.hpp"
#include "train/model.hpp"
#include "train/optimizers.hpp"
#include "train/progress.hpp"
#include "io/checkpoint.hpp"

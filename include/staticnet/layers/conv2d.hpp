#pragma once
/// @file
/// `conv2d<Filters, Kernel, Activation, Stride, Padding, Bias>`: 2-D convolution, channels-last.
///
/// Parameters are laid out as Keras stores them: the kernel [Kernel, Kernel, C, Filters]
/// then the bias [Filters] (none with `bias::none`, Keras's `use_bias=False`: a batch_norm
/// right after the convolution subtracts any bias again, so it would only cost time). 3x3
/// stride-1 convolutions with `padding::same` run Winograd's F(4x4, 3x3) (see `winograd_path`
/// below); the others are computed as one matrix product per chunk of images (im2col, then GEMM);
/// chunks keep the column matrix at about 1 MiB whatever the batch, so that it stays in L2
/// between im2col writing it and the GEMM reading it (2 MiB per core here: 1 MiB chunks
/// measured 10-15% faster per conv2 layer than 4 MiB, at batch 32 and 256).
/// A single-channel input (the first layer of a grayscale network) is convolved directly
/// instead (kernels/direct_conv.hpp): its im2col GEMM would have k = K*K, too little
/// arithmetic for the memory it moves.
/// The chunking depends on the batch size only, never on the thread count, so results are
/// the same with any number of threads.
/// When the next layer reads only the top-left part of the output (max pooling that leaves a
/// tail: `layer_context::output_rows_read`), the im2col path computes only that part: im2col sweeps only
/// its pixels, the product writes them compactly to scratch, and they are spread into the
/// output (with bias and activation) while the rest is zeroed; backward gathers the same
/// pixels' gradients. With the reference CNN this skips 17% of conv2's work and 56% of conv3's.

#include <algorithm>
#include <cstddef>
#include <span>
#include <string_view>
#include <type_traits>

#include "../kernels/direct_conv.hpp"
#include "../kernels/elementwise.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/im2col.hpp"
#include "../kernels/transpose.hpp"
#include "../kernels/winograd.hpp"
#include "activations.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace staticnet {

/// Whether a convolution adds a trainable bias per filter.
enum class bias { use, none };

namespace detail {
template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, shape In, std::size_t Position>
class conv2d_layer;
template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, std::size_t Groups, std::size_t Dilation, shape In, std::size_t Position>
class grouped_conv2d_layer;  // layers/grouped_conv2d.hpp

template <std::size_t layer_position, std::size_t input_rank, std::size_t kernel_size, std::size_t stride,
          bool kernel_fits, bool padding_fits>
constexpr bool check_conv2d_wiring() {
    STATICNET_WIRING_CHECK(input_rank == 3,
                           "conv2d needs an image input (height, width, channels); the layer before it gives a vector");
    STATICNET_WIRING_CHECK(kernel_size >= 1 && stride >= 1, "conv2d needs kernel_size >= 1 and stride >= 1");
    STATICNET_WIRING_CHECK(kernel_fits,
                           "conv2d kernel is larger than its (padded) input image (use padding::same or a smaller kernel)");
    STATICNET_WIRING_CHECK(padding_fits, "conv2d padding is as wide as its kernel or wider: a window would read only "
                                         "padding (pad each side by less than the kernel size)");
    return true;
}
}  // namespace detail

/// 2-D convolution with `Filters` output channels and a `Kernel` x `Kernel` window; with
/// `Groups` > 1 the channels and filters in that many groups, each filter seeing its group's
/// channels only, and with `Dilation` > 1 the window's taps that many pixels apart
/// (layers/grouped_conv2d.hpp).
template <std::size_t Filters, std::size_t Kernel, typename Activation = identity, std::size_t Stride = 1,
          padding_rule Padding = padding::valid, bias Bias = bias::use, std::size_t Groups = 1, std::size_t Dilation = 1>
struct conv2d {
    static_assert(activation<Activation> || input_derivative_activation<Activation>,
                  "conv2d: the third argument must be an activation (relu, silu, softmax, ...)");
    template <shape In, std::size_t Position>
    using bind = std::conditional_t<Groups == 1 && Dilation == 1,
                                    detail::conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, In, Position>,
                                    detail::grouped_conv2d_layer<Filters, Kernel, Activation, Stride, Padding, Bias, Groups,
                                                                 Dilation, In, Position>>;
};

namespace detail {

template <std::size_t Filters, std::size_t Kernel, typename Activation, std::size_t Stride, padding_rule Padding,
          bias Bias, shape In, std::size_t Position>
class conv2d_layer : public layer_defaults {
    static constexpr padded_axis vertical = pad_axis(Padding, In.height(), Kernel, Stride, true);
    static constexpr padded_axis horizontal = pad_axis(Padding, In.width(), Kernel, Stride, false);
    static_assert(check_conv2d_wiring<Position, In.rank, Kernel, Stride, In.rank != 3 || vertical.out * horizontal.out != 0,
                                      In.rank != 3 || Padding.same ||
                                          (vertical.before < Kernel && vertical.after < Kernel && horizontal.before < Kernel &&
                                           horizontal.after < Kernel)>());

public:
    using activation_type = Activation;
    static constexpr std::string_view name = "conv2d";
    static constexpr shape input_shape = In;
    static constexpr shape output_shape{vertical.out, horizontal.out, Filters};
    /// The zeros added on each side (ONNX's `pads`).
    static constexpr padding_pixels pads{vertical.before, vertical.after, horizontal.before, horizontal.after};
    static constexpr kernels::window_geometry geometry{In.height(), In.width(), In.channels(), Kernel, Stride,
                                                       pads.top, pads.left, output_shape.height(), output_shape.width()};
    static constexpr std::size_t kernel_count = Kernel * Kernel * In.channels() * Filters;
    static constexpr bool has_bias = Bias == bias::use;
    static constexpr std::size_t parameter_count = kernel_count + (has_bias ? Filters : 0);
    static constexpr layer_traits traits{.weight_count = kernel_count, .activation = activation_info_of<Activation>};
    static constexpr std::size_t flops_per_sample = 2 * geometry.rows_per_image() * geometry.column_width() * Filters;
    /// With silu, gelu or hard_swish: the pre-activation output, which their derivative needs.
    static constexpr std::size_t cache_floats(std::size_t batch) noexcept {
        return batch * output_shape.size() * folded_activation<Activation>::kept_floats;
    }

private:
    /// 3x3 stride-1 convolutions padded by one pixel on every side (`padding::same` or
    /// `padding::symmetric<1>`) with enough channels on both sides to fill the products run
    /// Winograd's F(4x4, 3x3) (kernels/winograd.hpp): up to 4 times fewer multiply-adds.
    /// Valid padding keeps im2col, so the reference CNN's results stay those published for it.
    /// An output of one tile (4x4 or smaller) keeps im2col too: there Winograd does as many
    /// multiply-adds per used output (a 2x2 image wastes 12 of its 16) and its kernel transform
    /// (36 C F floats, each pass) is not amortised. Measured (2026-12-05, bench_zoo, 1 thread):
    /// ResNet-18 at 64x64 57-76 -> 174-185 images/s, VGG-11 at 32x32 78-83 -> 158-163.
    static constexpr bool winograd_path = Kernel == 3 && Stride == 1 && pads == padding_pixels{1, 1, 1, 1} &&
                                          In.channels() >= 8 && Filters >= 8 &&
                                          kernels::winograd_tiles_per_image(geometry) >= 2;
    static constexpr std::size_t winograd_tiles = kernels::winograd_tiles_per_image(geometry);
    static constexpr std::size_t winograd_band = kernels::winograd_band_floats(geometry);
    static constexpr std::size_t winograd_matrices = kernels::winograd_matrices;
    /// V (matrices x tiles x channels) and M (matrices x tiles x filters) of one image, and
    /// the transforms' band workspace (one per image of a chunk: threads split the images).
    static constexpr std::size_t winograd_image_floats =
        winograd_matrices * winograd_tiles * (In.channels() + Filters) + winograd_band;
    /// U (or dU): matrices x channels x filters.
    static constexpr std::size_t winograd_kernel_floats = winograd_matrices * In.channels() * Filters;

public:

    /// The most images a chunk holds: about 1 MiB of im2col columns, or 2 MiB of Winograd
    /// matrices (V and M of every image: both are in use at once; 512 KiB to 4 MiB measured
    /// the same within this machine's noise, and larger chunks give the products more rows).
    static constexpr std::size_t max_chunk_images = [] {
        if constexpr (winograd_path)
            return std::max<std::size_t>(1, (std::size_t{1} << 19) / winograd_image_floats);
        else return std::max<std::size_t>(1, (std::size_t{1} << 18) / (geometry.rows_per_image() * geometry.column_width()));
    }();
    /// Images per chunk: the whole batch, or equal parts of at most `max_chunk_images`.
    static constexpr std::size_t chunk_images(std::size_t batch) noexcept {
        const std::size_t chunks = (batch + max_chunk_images - 1) / max_chunk_images;
        return chunks == 0 ? 0 : (batch + chunks - 1) / chunks;
    }
    /// Room for the largest chunk of any batch up to `batch`, not of `batch` itself: chunks do
    /// not grow with the batch (7 images may make one chunk of 7, 8 images two of 4), and a
    /// workspace prepared for a batch must hold every smaller one (the last micro-batch).
    static constexpr std::size_t scratch_floats(std::size_t batch) noexcept {
        if constexpr (winograd_path) return 2 * winograd_kernel_floats + std::min(batch, max_chunk_images) * winograd_image_floats;
        return std::min(batch, max_chunk_images) * geometry.rows_per_image() *
               (geometry.column_width() + (can_skip_pixels ? Filters : 0));
    }

    void initialize(std::span<float> params, std::span<float>, rng& g) const noexcept {
        glorot_uniform(params.first(kernel_count), Kernel * Kernel * In.channels(), Kernel * Kernel * Filters, g);
        std::fill(params.begin() + kernel_count, params.end(), 0.0f);
    }

    void forward(const layer_context& ctx, const forward_buffers& b) const {
        const float* in = b.input;
        float* out = b.output;
        const float* kernel = b.parameters;
        const float* bias = kernel + kernel_count;
        if constexpr (direct_path) {
            // Image by image, the activation while the image's output is still in cache.
            ctx.pool->parallel_for(ctx.batch, [&](std::size_t begin, std::size_t end) {
                for (std::size_t n = begin; n < end; ++n) {
                    float* image_out = out + n * output_shape.size();
                    direct_kernel::forward(in + n * In.size(), 1, kernel, bias, image_out);
                    act::forward(out, b.cache, n * output_shape.size(), geometry.rows_per_image(), Filters);
                }
            });
            return;
        }
        if constexpr (can_skip_pixels) {
            if (const auto part = pixels_read(ctx); part.rows_per_image() < geometry.rows_per_image()) {
                forward_part(ctx, part, in, kernel, bias, out, b.cache);
                return;
            }
        }
        if constexpr (winograd_path) {
            winograd_forward(ctx, in, kernel, out);
        } else {
            for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
                const float* columns = im2col(ctx, geometry, in + first * In.size(), images);
                kernels::gemm(images * geometry.rows_per_image(), Filters, geometry.column_width(), columns,
                              geometry.column_width(), kernels::op::none, kernel, Filters, kernels::op::none,
                              out + first * output_shape.size(), Filters, false, ctx.pool);
            });
        }
        if constexpr (!has_pointwise_pass) return;
        const std::size_t rows = ctx.batch * geometry.rows_per_image();
        ctx.pool->parallel_for(rows, [&](std::size_t begin, std::size_t end) {
            for_row_blocks(begin, end, [&](std::size_t first, std::size_t count) {
                if constexpr (has_bias) kernels::add_bias(out + first * Filters, bias, count, Filters);
                act::forward(out, b.cache, first * Filters, count, Filters);
            });
        }, 64);
    }

    void backward(const layer_context& ctx, const backward_buffers& b) const {
        const float* in = b.input;
        const float* out = b.output;
        float* dout = b.output_gradient;
        float* din = b.input_gradient;
        const float* kernel = b.parameters;
        float* dparams = b.parameter_gradients;
        const std::size_t rows = ctx.batch * geometry.rows_per_image();
        if constexpr (direct_path) {
            // One thread, images in order: the sums do not depend on the thread count. The
            // activation's derivative is applied row by row inside the sweep.
            const bool pre_activation = ctx.gradient_is_pre_activation;
            direct_kernel::backward_parameters(in, dout, ctx.batch, dparams, dparams + kernel_count,
                                               [&](std::size_t row, float* dz) {
                                                   if (!pre_activation)
                                                       act::backward(out, b.cache, row * output_shape.width() * Filters,
                                                                     dz, output_shape.width(), Filters);
                                               });
            if (din == nullptr) return;
        } else if (const auto part = pixels_read(ctx); can_skip_pixels && part.rows_per_image() < geometry.rows_per_image()) {
            backward_part(ctx, part, b);
            return;
        } else if (!has_pointwise_pass) {
            // Nothing to apply or sum (a ResNet's convolutions): no pass over the gradient.
        } else if (ctx.pool->size() == 1) {
            // One pass: each block's derivative, then its bias sums, while it is in L1 (the
            // sums run in row order either way, so the result is the same).
            for_row_blocks(0, rows, [&](std::size_t first, std::size_t count) {
                if (!ctx.gradient_is_pre_activation)
                    act::backward(out, b.cache, first * Filters, dout + first * Filters, count, Filters);
                if constexpr (has_bias)
                    kernels::accumulate_column_sums(dout + first * Filters, count, Filters, dparams + kernel_count);
            });
        } else {
            if (!ctx.gradient_is_pre_activation)
                ctx.pool->parallel_for(rows, [&](std::size_t begin, std::size_t end) {
                    act::backward(out, b.cache, begin * Filters, dout + begin * Filters, end - begin, Filters);
                }, 64);
            if constexpr (has_bias) kernels::accumulate_column_sums(dout, rows, Filters, dparams + kernel_count);
        }
        if constexpr (winograd_path) {
            winograd_backward(ctx, in, dout, kernel, din, dparams);
            return;
        }
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            const std::size_t chunk_rows = images * geometry.rows_per_image();
            const float* dz = dout + first * output_shape.size();
            if constexpr (!direct_path) {
                const float* columns = im2col(ctx, geometry, in + first * In.size(), images);
                kernels::gemm(geometry.column_width(), Filters, chunk_rows, columns, geometry.column_width(),
                              kernels::op::transpose, dz, Filters, kernels::op::none, dparams, Filters, true, ctx.pool);
            }
            if (din == nullptr) return;
            float* din_chunk = din + first * In.size();
            // 1x1 stride-1 convolutions read the input in place: the column gradient is the input gradient.
            float* dcolumns = reads_input_in_place ? din_chunk : ctx.scratch;
            kernels::gemm(chunk_rows, geometry.column_width(), Filters, dz, Filters, kernels::op::none, kernel,
                          Filters, kernels::op::transpose, dcolumns, geometry.column_width(), false, ctx.pool);
            if constexpr (!reads_input_in_place)
                ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                    kernels::col2im(geometry, dcolumns + begin * geometry.rows_per_image() * geometry.column_width(),
                                    end - begin, din_chunk + begin * In.size());
                });
        });
    }

private:
    using act = folded_activation<Activation>;
    static constexpr bool reads_input_in_place = Kernel == 1 && Stride == 1;
    /// Whether the output needs a pass after the product (bias, an activation other than the
    /// identity), and so the gradient one before the backward products.
    static constexpr bool has_pointwise_pass = has_bias || !std::is_same_v<Activation, identity>;
    static constexpr bool direct_path = [] {
        if constexpr (In.channels() == 1 && !reads_input_in_place && has_bias)
            return kernels::direct_conv_single_channel<geometry, Filters>::fits;
        else return false;
    }();
    /// Whether the layer can compute part of its output (the im2col path only).
    static constexpr bool can_skip_pixels = !reads_input_in_place && !direct_path && !winograd_path;
    using direct_kernel = std::conditional_t<direct_path, kernels::direct_conv_single_channel<geometry, Filters>, void>;

public:
    /// How this shape is computed (`summary()` shows it): decided from the compile-time shape
    /// alone, so every rank and every run takes the same path.
    static constexpr std::string_view algorithm = winograd_path ? "winograd F(4x4,3x3)"
                                                  : direct_path ? "direct (1 channel)"
                                                  : reads_input_in_place ? "gemm (1x1)"
                                                                         : "im2col + gemm";

private:

    /// Calls f(first, count) on blocks of rows [begin, end) small enough for L1 (about 16 KiB),
    /// so that passes over the output meet it in cache.
    template <typename F>
    static void for_row_blocks(std::size_t begin, std::size_t end, F&& f) {
        constexpr std::size_t block = std::max<std::size_t>(1, 4096 / Filters);
        for (std::size_t first = begin; first < end; first += block) f(first, std::min(block, end - first));
    }

    template <typename F>
    static void for_each_chunk(const layer_context& ctx, F&& f) {
        const std::size_t chunk = chunk_images(ctx.batch);
        for (std::size_t first = 0; first < ctx.batch; first += chunk) f(first, std::min(chunk, ctx.batch - first));
    }

    static const float* im2col(const layer_context& ctx, const kernels::window_geometry& g, const float* in,
                               std::size_t images) {
        if constexpr (reads_input_in_place) return in;
        // By rows, not images: a chunk may be a single large image (the 7x7 stem's).
        ctx.pool->parallel_for(images * g.rows_per_image(), [&](std::size_t begin, std::size_t end) {
            kernels::im2col_rows(g, in, begin, end, ctx.scratch);
        }, 16);
        return ctx.scratch;
    }

    /// Forward by Winograd, chunk by chunk: input transform (threads split the images), the
    /// products (threads split the products, each one serial, so sums do not depend on the
    /// thread count), output transform.
    static void winograd_forward(const layer_context& ctx, const float* in, const float* kernel, float* out) {
        float* u = ctx.scratch;
        float* v = u + 2 * winograd_kernel_floats;
        ctx.pool->parallel_for(In.channels(), [&](std::size_t begin, std::size_t end) {
            kernels::winograd_transform_kernel(kernel, In.channels(), Filters, u, begin, end);
        });
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            const std::size_t tiles = images * winograd_tiles;
            float* m = v + winograd_matrices * tiles * In.channels();
            float* bands = m + winograd_matrices * tiles * Filters;
            // Each thread takes whole images through all three steps, its own rows of every
            // product included: V and M stay in the cache of the core that wrote them, and the
            // threads meet once per chunk instead of three times.
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                const std::size_t first_tile = begin * winograd_tiles, own_tiles = (end - begin) * winograd_tiles;
                kernels::winograd_transform_input(geometry, in + (first + begin) * In.size(), end - begin, v, first_tile,
                                                  tiles, bands + begin * winograd_band);
                for (std::size_t p = 0; p < winograd_matrices; ++p)
                    kernels::gemm(own_tiles, Filters, In.channels(), v + (p * tiles + first_tile) * In.channels(),
                                  In.channels(), kernels::op::none, u + p * In.channels() * Filters, Filters,
                                  kernels::op::none, m + (p * tiles + first_tile) * Filters, Filters, false, nullptr);
                kernels::winograd_transform_output(geometry, Filters, m, first_tile, tiles, end - begin,
                                                   out + (first + begin) * output_shape.size());
            });
        });
    }

    /// Backward by Winograd (the adjoint of `winograd_forward`); `dout` is the pre-activation
    /// gradient. dU sums over every chunk, then turns into the kernel gradient once.
    static void winograd_backward(const layer_context& ctx, const float* in, const float* dout, const float* kernel,
                                  float* din, float* dkernel) {
        constexpr std::size_t C = In.channels();
        float* ut = ctx.scratch;  // U transposed: [matrices][filters][channels]
        float* du = ut + winograd_kernel_floats;
        float* v = du + winograd_kernel_floats;
        // dV = dM U^T reads U transposed: stored so once per pass, the products of every
        // chunk pack it with plain loads instead of transposing it each time. Every step of
        // this runs on all threads: a serial millisecond here (the transposition of 36
        // 128 x 128 matrices, one float at a time) also cost the next region the wake-up
        // of threads that had gone to sleep.
        ctx.pool->parallel_for(C, [&](std::size_t begin, std::size_t end) {
            kernels::winograd_transform_kernel(kernel, C, Filters, du, begin, end);
        });
        ctx.pool->parallel_for(winograd_matrices, [&](std::size_t begin, std::size_t end) {
            for (std::size_t p = begin; p < end; ++p) {
                kernels::transpose(C, Filters, du + p * C * Filters, Filters, ut + p * Filters * C, C);
                std::fill_n(du + p * C * Filters, C * Filters, 0.0f);
            }
        });
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            const std::size_t tiles = images * winograd_tiles;
            float* dm = v + winograd_matrices * tiles * C;
            float* bands = dm + winograd_matrices * tiles * Filters;
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                kernels::winograd_transform_input(geometry, in + (first + begin) * In.size(), end - begin, v,
                                                  begin * winograd_tiles, tiles, bands + begin * winograd_band);
                kernels::winograd_transform_output_gradient(geometry, Filters, dout + (first + begin) * output_shape.size(),
                                                            end - begin, dm, begin * winograd_tiles, tiles);
            });
            // dU sums over all tiles: the threads take whole matrices.
            ctx.pool->parallel_for(winograd_matrices, [&](std::size_t begin, std::size_t end) {
                for (std::size_t p = begin; p < end; ++p)
                    kernels::gemm(C, Filters, tiles, v + p * tiles * C, C, kernels::op::transpose, dm + p * tiles * Filters,
                                  Filters, kernels::op::none, du + p * C * Filters, Filters, true, nullptr);
            });
            if (din == nullptr) return;
            // dV (in place of V, read for the last time above) and the input gradient: each
            // thread its own images, as in forward.
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                const std::size_t first_tile = begin * winograd_tiles, own_tiles = (end - begin) * winograd_tiles;
                for (std::size_t p = 0; p < winograd_matrices; ++p)
                    kernels::gemm(own_tiles, C, Filters, dm + (p * tiles + first_tile) * Filters, Filters,
                                  kernels::op::none, ut + p * Filters * C, C, kernels::op::none,
                                  v + (p * tiles + first_tile) * C, C, false, nullptr);
                kernels::winograd_transform_input_gradient(geometry, v, first_tile, tiles, end - begin,
                                                           din + (first + begin) * In.size(), bands + begin * winograd_band);
            });
        });
        ctx.pool->parallel_for(C, [&](std::size_t begin, std::size_t end) {
            kernels::winograd_add_kernel_gradient(du, C, Filters, dkernel, begin, end);
        });
    }

    /// The sweep over the output pixels the next layer reads (all of them by default).
    static kernels::window_geometry pixels_read(const layer_context& ctx) noexcept {
        kernels::window_geometry g = geometry;
        if (ctx.output_rows_read != 0) g.out_height = std::min(g.out_height, ctx.output_rows_read);
        if (ctx.output_columns_read != 0) g.out_width = std::min(g.out_width, ctx.output_columns_read);
        return g;
    }

    /// Where the compact per-pixel products (or gradients) of a chunk go: after its columns.
    static float* compact_rows(const layer_context& ctx) noexcept {
        return ctx.scratch + chunk_images(ctx.batch) * geometry.rows_per_image() * geometry.column_width();
    }

    /// Forward over the pixels of `part` only; the output's other pixels are set to zero.
    static void forward_part(const layer_context& ctx, const kernels::window_geometry& part, const float* in,
                             const float* kernel, const float* bias, float* out, float* cache) {
        const std::size_t rows = part.rows_per_image(), row_width = part.out_width * Filters;
        float* products = compact_rows(ctx);
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            const float* columns = im2col(ctx, part, in + first * In.size(), images);
            kernels::gemm(images * rows, Filters, geometry.column_width(), columns, geometry.column_width(),
                          kernels::op::none, kernel, Filters, kernels::op::none, products, Filters, false, ctx.pool);
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                for (std::size_t n = begin; n < end; ++n) {
                    float* image = out + (first + n) * output_shape.size();
                    for (std::size_t y = 0; y < output_shape.height(); ++y) {
                        float* dst = image + y * output_shape.width() * Filters;
                        if (y >= part.out_height) {
                            std::fill_n(dst, output_shape.width() * Filters, 0.0f);
                            continue;
                        }
                        std::copy_n(products + (n * part.out_height + y) * row_width, row_width, dst);
                        if constexpr (has_bias) kernels::add_bias(dst, bias, part.out_width, Filters);
                        act::forward(out, cache, static_cast<std::size_t>(dst - out), part.out_width, Filters);
                        std::fill(dst + row_width, dst + output_shape.width() * Filters, 0.0f);
                    }
                }
            });
        });
    }

    /// Backward over the pixels of `part` only (the output gradient is zero elsewhere): their
    /// gradients are gathered compactly, turned into pre-activation gradients, summed into the
    /// bias gradient in row order (as the full sweep would, less the zero rows) and used for
    /// both products.
    void backward_part(const layer_context& ctx, const kernels::window_geometry& part, const backward_buffers& b) const {
        const std::size_t rows = part.rows_per_image(), row_width = part.out_width * Filters;
        const float* out = b.output;
        const float* dout = b.output_gradient;
        float* din = b.input_gradient;
        float* dparams = b.parameter_gradients;
        const float* kernel = b.parameters;
        float* dz = compact_rows(ctx);
        for_each_chunk(ctx, [&](std::size_t first, std::size_t images) {
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                for (std::size_t n = begin; n < end; ++n)
                    for (std::size_t y = 0; y < part.out_height; ++y) {
                        const std::size_t at = (first + n) * output_shape.size() + y * output_shape.width() * Filters;
                        float* row = dz + (n * part.out_height + y) * row_width;
                        std::copy_n(dout + at, row_width, row);
                        if (!ctx.gradient_is_pre_activation) act::backward(out, b.cache, at, row, part.out_width, Filters);
                    }
            });
            const std::size_t chunk_rows = images * rows;
            if constexpr (has_bias) kernels::accumulate_column_sums(dz, chunk_rows, Filters, dparams + kernel_count);
            const float* columns = im2col(ctx, part, b.input + first * In.size(), images);
            kernels::gemm(geometry.column_width(), Filters, chunk_rows, columns, geometry.column_width(),
                          kernels::op::transpose, dz, Filters, kernels::op::none, dparams, Filters, true, ctx.pool);
            if (din == nullptr) return;
            float* dcolumns = ctx.scratch;
            kernels::gemm(chunk_rows, geometry.column_width(), Filters, dz, Filters, kernels::op::none, kernel, Filters,
                          kernels::op::transpose, dcolumns, geometry.column_width(), false, ctx.pool);
            ctx.pool->parallel_for(images, [&](std::size_t begin, std::size_t end) {
                kernels::col2im(part, dcolumns + begin * rows * geometry.column_width(), end - begin,
                                din + (first + begin) * In.size());
            });
        });
    }
};

}  // namespace detail
}  // namespace staticnet

// The grouped and dilated forms, which `conv2d` binds to (after conv2d_layer, whose wiring
// check they share).
#include "grouped_conv2d.hpp"

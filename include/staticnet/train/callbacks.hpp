#pragma once
/// @file
/// Callbacks: objects passed to `fit` that it calls at fixed points of training.
///
/// A callback is any object with some of these member functions (all optional, detected
/// at compile time, so an unused hook costs nothing):
///
///     void on_train_begin(Model&, const fit_options&);
///     void on_epoch_begin(Model&, std::size_t epoch, std::size_t epochs);  // 1-based
///     void on_batch_begin(Model&, const batch_log&);  // the step about to run, the means so far
///     void on_batch_end(Model&, const batch_log&);
///     void on_epoch_end(Model&, const epoch_log&);
///     void on_train_end(Model&, const history&);
///
/// `Model` is the `model<...>` being trained: a callback can change its learning rate or
/// call `stop_training()`. Callbacks run on every rank, in the order given to `fit` (after
/// the progress bar, which `fit` adds on rank 0 when `verbose` is set).
///
/// Writing your own: any struct with some hooks, usually templates on the model type.
///
///     struct print_val_loss {
///         template <typename Model>
///         void on_epoch_end(Model& model, const sn::epoch_log& e) const {
///             if (model.comm().rank() == 0) std::cout << e.epoch << ": " << e.val_loss << '\n';
///         }
///     };
///     model.fit(train, {.epochs = 5, .validation = &test}, print_val_loss{}, sn::early_stopping{});
///
/// `fit` takes its callbacks by forwarding reference and calls them as lvalues of the type
/// passed: a callback passed as a `const` object needs `const` hooks, and `fit` refuses, at
/// compile time, a callback with no hook it can call. A callback that keeps state (counters,
/// an open file) has non-const hooks and is passed as a non-const lvalue (to read its state
/// after `fit`) or as a temporary. Keep hooks cheap: `on_batch_begin` and `on_batch_end` run
/// at every step.
/// Work for one process (printing, files) checks `model.comm().rank() == 0`; decisions that
/// change training (stopping, the learning rate) must be the same on every rank, as they
/// are when they follow the `epoch_log` (global results).
///
/// Ready-made callbacks, each in its own header (in `<staticnet/staticnet.hpp>` unless noted):
///  - `progress_bar` (train/progress.hpp): Keras-like progress, added by `fit` itself;
///  - `early_stopping` (train/early_stopping.hpp): stop when a metric stops improving;
///  - `step_decay`, `cosine_decay`, `lr_schedule`, `linear_warmup` (train/schedules.hpp):
///    learning rates per epoch, and a warm-up per step;
///  - `csv_logger` (train/history_io.hpp): one CSV row per epoch, as training runs;
///  - `checkpoint_callback` (io/checkpoint.hpp): checkpoints to resume from;
///  - `lambda_callback`, `on_epoch_end_callback` (below): hooks made of lambdas, for quick
///    one-offs;
///  - `tensorboard_writer` (io/tensorboard.hpp, opt-in: not in `staticnet.hpp`): a
///    TensorBoard event file of the run.

#include <type_traits>
#include <utility>

#include "history.hpp"

namespace staticnet {

struct fit_options;  // train/model.hpp (declared here for the hooks' signatures)

namespace detail {
/// The type of a `lambda_callback` hook that was not given: not callable, so `fit` skips it.
struct no_hook {};
}  // namespace detail

/// A callback made of lambdas, one per hook it needs; the hooks not given do nothing.
///
///     model.fit(train, {.epochs = 10},
///               sn::lambda_callback{.on_epoch_end = [&](auto& model, const sn::epoch_log& e) {
///                   if (e.accuracy > 0.99) model.stop_training();
///               }});
///
/// Each lambda takes exactly the arguments of its hook, the model first (`auto&`, or the
/// model's type): `on_train_begin(model, const fit_options&)`, `on_epoch_begin(model,
/// epoch, epochs)`, `on_batch_begin(model, const batch_log&)`, `on_batch_end(model, const
/// batch_log&)`, `on_epoch_end(model, const epoch_log&)`, `on_train_end(model, const
/// history&)`. A lambda that does not take them is never called; if no hook can be called,
/// `fit` does not compile. A `mutable` lambda needs a non-const `lambda_callback` (pass it
/// as a temporary or a non-const variable).
template <typename TrainBegin = detail::no_hook, typename EpochBegin = detail::no_hook,
          typename BatchBegin = detail::no_hook, typename BatchEnd = detail::no_hook,
          typename EpochEnd = detail::no_hook, typename TrainEnd = detail::no_hook>
struct lambda_callback {
    [[no_unique_address]] TrainBegin on_train_begin{};
    [[no_unique_address]] EpochBegin on_epoch_begin{};
    [[no_unique_address]] BatchBegin on_batch_begin{};
    [[no_unique_address]] BatchEnd on_batch_end{};
    [[no_unique_address]] EpochEnd on_epoch_end{};
    [[no_unique_address]] TrainEnd on_train_end{};
};

/// `lambda_callback{.on_epoch_end = f}`, the most common one, in a spelling that also
/// compiles where class template argument deduction for aggregates is missing (clang < 17).
template <typename F>
[[nodiscard]] constexpr auto on_epoch_end_callback(F&& f) {
    return lambda_callback<detail::no_hook, detail::no_hook, detail::no_hook, detail::no_hook, std::decay_t<F>>{
        .on_epoch_end = std::forward<F>(f)};
}

}  // namespace staticnet

// ------------------------------------------------------------------ implementation

namespace staticnet::detail {

// call_<hook>(callback, model, args...) calls callback.<hook>(model, args...) when it exists
// (a member function, or a callable member such as `lambda_callback`'s lambdas).
#define STATICNET_CALLBACK_HOOK(hook)                                                       \
    template <typename Callback, typename Model, typename... Args>                          \
    void call_##hook(Callback& c, Model& m, const Args&... args) {                          \
        if constexpr (requires { c.hook(m, args...); }) c.hook(m, args...);                 \
    }
STATICNET_CALLBACK_HOOK(on_train_begin)
STATICNET_CALLBACK_HOOK(on_epoch_begin)
STATICNET_CALLBACK_HOOK(on_batch_begin)
STATICNET_CALLBACK_HOOK(on_batch_end)
STATICNET_CALLBACK_HOOK(on_epoch_end)
STATICNET_CALLBACK_HOOK(on_train_end)
#undef STATICNET_CALLBACK_HOOK

}  // namespace staticnet::detail

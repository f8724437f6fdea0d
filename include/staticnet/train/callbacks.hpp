#pragma once
/// @file
/// Callbacks: objects passed to `fit` that it calls at fixed points of training.
///
/// A callback is any object with some of these member functions (all optional, detected
/// at compile time, so an unused hook costs nothing):
///
///     void on_train_begin(Model&, const fit_options&);
///     void on_epoch_begin(Model&, std::size_t epoch, std::size_t epochs);  // 1-based
///     void on_batch_end(Model&, const batch_log&);
///     void on_epoch_end(Model&, const epoch_log&);
///     void on_train_end(Model&, const history&);
///
/// `Model` is the `model<...>` being trained: a callback can change its learning rate or
/// call `stop_training()`. Callbacks run on every rank, in the order given to `fit`.

namespace staticnet::detail {

// call_<hook>(callback, model, args...) calls callback.<hook>(model, args...) when it exists.
#define STATICNET_CALLBACK_HOOK(hook)                                                       \
    template <typename Callback, typename Model, typename... Args>                          \
    void call_##hook(Callback& c, Model& m, const Args&... args) {                          \
        if constexpr (requires { c.hook(m, args...); }) c.hook(m, args...);                 \
    }
STATICNET_CALLBACK_HOOK(on_train_begin)
STATICNET_CALLBACK_HOOK(on_epoch_begin)
STATICNET_CALLBACK_HOOK(on_batch_end)
STATICNET_CALLBACK_HOOK(on_epoch_end)
STATICNET_CALLBACK_HOOK(on_train_end)
#undef STATICNET_CALLBACK_HOOK

}  // namespace staticnet::detail

#pragma once
/// @file
/// `class_list`: what a data set's labels mean (how many classes, and their names when the
/// source has them), and `require_same_classes`, which refuses a test set whose classes are
/// not the training set's. Labels are only numbers: without this check a model trained on 3
/// classes of shards is validated against the 10 of Fashion-MNIST's IDX test set and reports
/// an accuracy that means nothing.
///
///     data::require_same_classes(data::class_list::of(train, "shard directory 'shards'"),
///                                data::class_list::of(test, "image folder 'test'"));

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace staticnet::data {

// ===================================================================== public API

/// The classes of a data set, and where the set came from (for messages).
struct class_list {
    std::string source;              ///< e.g. "shard directory 'shards'"
    std::size_t count = 0;           ///< number of classes
    std::vector<std::string> names;  ///< by label; empty when the source names none (IDX, NumPy)

    /// The classes of a data set that has `num_classes` and `class_names` (`dataset`,
    /// `byte_dataset`).
    template <typename Data>
    [[nodiscard]] static class_list of(const Data& d, std::string source) {
        return {std::move(source), d.num_classes, d.class_names};
    }
};

/// "3 classes: cat, dog, fox", or "10 classes (no names: labels 0-9)".
[[nodiscard]] inline std::string describe(const class_list& c);

/// Throws `data_error` naming both sets and both class lists when `test`'s classes are not
/// `train`'s: a different count, or, where both have names, different names (or order: a
/// label must mean the same class in both). A set without names matches any names of the
/// same count, since nothing tells them apart. `hint`, when given, ends the message (what
/// to do about it, in the caller's words).
inline void require_same_classes(const class_list& train, const class_list& test, std::string_view hint = {});

// ===================================================================== implementation

inline std::string describe(const class_list& c) {
    std::string text = std::to_string(c.count) + (c.count == 1 ? " class" : " classes");
    if (c.names.empty())
        return c.count == 0 ? text : text + " (no names: labels 0-" + std::to_string(c.count - 1) + ")";
    text += ": ";
    for (std::size_t i = 0; i < c.names.size(); ++i) text += (i == 0 ? "" : ", ") + c.names[i];
    return text;
}

inline void require_same_classes(const class_list& train, const class_list& test, std::string_view hint) {
    const bool both_named = !train.names.empty() && !test.names.empty();
    if (train.count == test.count && (!both_named || train.names == test.names)) return;
    std::string message = "the training set (" + train.source + ") has " + describe(train) + ", but the test set (" +
                          test.source + ") has " + describe(test) + "; a label must mean the same class in both";
    if (!hint.empty()) message += "; " + std::string(hint);
    throw data_error(message);
}

}  // namespace staticnet::data

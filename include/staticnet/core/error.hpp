#pragma once
/// @file
/// The exceptions staticnet throws. Every message names what was wrong and where (file,
/// offset, layer, step), so a user can act on it without a debugger.

#include <stdexcept>
#include <string>

namespace staticnet {

/// Base of every staticnet exception.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A data file (IDX, shard) is missing, truncated, corrupt or does not fit the model.
class data_error : public error {
public:
    using error::error;
};

/// A tensor handed to the model at run time has the wrong shape or size.
class shape_error : public error {
public:
    using error::error;
};

/// Training produced a non-finite loss or gradient.
class numeric_error : public error {
public:
    using error::error;
};

/// A checkpoint or weights file cannot be written or loaded.
class checkpoint_error : public error {
public:
    using error::error;
};

}  // namespace staticnet

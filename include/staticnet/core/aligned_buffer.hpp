#pragma once
/// @file
/// `aligned_buffer<T>`: a fixed-size, 64-byte aligned, zero-initialised array on the heap.
///
/// The parameter and gradient arenas and every workspace are aligned buffers: 64 bytes is a
/// cache line and the widest SIMD register, so aligned loads are always legal at offset 0 and
/// two arenas never share a cache line. The size changes only through `resize`, which happens
/// before training, never inside a step.

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>

namespace staticnet {

inline constexpr std::size_t buffer_alignment = 64;

template <typename T>
class aligned_buffer {
    static_assert(std::is_trivially_copyable_v<T>, "aligned_buffer holds plain numbers");

public:
    aligned_buffer() = default;
    explicit aligned_buffer(std::size_t n) { resize(n); }

    aligned_buffer(const aligned_buffer& other) : aligned_buffer(other.size()) {
        if (size_ != 0) std::memcpy(data(), other.data(), size_ * sizeof(T));
    }
    aligned_buffer& operator=(const aligned_buffer& other) {
        if (this != &other) {
            aligned_buffer copy(other);
            swap(copy);
        }
        return *this;
    }
    aligned_buffer(aligned_buffer&& other) noexcept { swap(other); }
    aligned_buffer& operator=(aligned_buffer&& other) noexcept {
        swap(other);
        return *this;
    }
    ~aligned_buffer() = default;

    /// Reallocates to `n` zeroed elements; a no-op when the size is already `n`.
    void resize(std::size_t n) {
        if (n == size_) return;
        data_.reset();
        size_ = 0;
        if (n == 0) return;
        const std::size_t bytes = (n * sizeof(T) + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
        data_.reset(static_cast<T*>(::operator new(bytes, std::align_val_t{buffer_alignment})));
        std::memset(static_cast<void*>(data_.get()), 0, bytes);
        size_ = n;
    }
    /// Grows to at least `n` elements (contents are not preserved when it grows).
    void reserve_at_least(std::size_t n) {
        if (n > size_) resize(n);
    }
    void fill_zero() noexcept {
        if (size_ != 0) std::memset(static_cast<void*>(data()), 0, size_ * sizeof(T));
    }

    [[nodiscard]] T* data() noexcept { return data_.get(); }
    [[nodiscard]] const T* data() const noexcept { return data_.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    T& operator[](std::size_t i) noexcept { return data_.get()[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_.get()[i]; }
    [[nodiscard]] std::span<T> span() noexcept { return {data(), size_}; }
    [[nodiscard]] std::span<const T> span() const noexcept { return {data(), size_}; }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size_; }
    const T* begin() const noexcept { return data(); }
    const T* end() const noexcept { return data() + size_; }

    void swap(aligned_buffer& other) noexcept {
        data_.swap(other.data_);
        std::swap(size_, other.size_);
    }

private:
    struct deleter {
        void operator()(T* p) const noexcept { ::operator delete(p, std::align_val_t{buffer_alignment}); }
    };
    std::unique_ptr<T, deleter> data_;
    std::size_t size_ = 0;
};

/// Rounds a float count up so that the next block starts on a 64-byte boundary.
constexpr std::size_t align_floats(std::size_t n) noexcept {
    constexpr std::size_t per_line = buffer_alignment / sizeof(float);
    return (n + per_line - 1) / per_line * per_line;
}

}  // namespace staticnet

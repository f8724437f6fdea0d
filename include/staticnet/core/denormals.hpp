#pragma once
/// @file
/// `flush_denormals`: treats subnormal floats as zero on the calling thread while it lives.
///
/// Why: Adam's moments of a parameter whose gradient stays zero (a dead ReLU unit, a
/// border weight) decay by beta each step and reach the subnormal range after several
/// hundred steps; x86 cores then take a microcode assist on every operation that touches
/// them, up to a hundred times slower. Measured on the reference job: the optimizer step
/// went from a few percent of a training step to half a millisecond, 6% of an epoch, by the
/// end of the first epoch, which the step benchmark (a few hundred steps) never sees.
/// Neural-network runtimes flush subnormals for this reason (oneDNN, TensorFlow); values
/// below 1.2e-38 carry no information for training.
///
/// The setting is per thread: `thread_pool` workers set it for their life, the trainer
/// sets it on the calling thread for the duration of a call and restores the caller's
/// setting after, so it never leaks into user code. Every thread computes in the same mode,
/// which keeps results independent of the thread count.

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace staticnet {

class flush_denormals {
public:
    flush_denormals() noexcept : saved_(read()) { write(saved_ | mask); }
    ~flush_denormals() { write(saved_); }
    flush_denormals(const flush_denormals&) = delete;
    flush_denormals& operator=(const flush_denormals&) = delete;

    /// Sets the mode on this thread for good (the pool's own threads).
    static void set_for_this_thread() noexcept { write(read() | mask); }
    /// Whether subnormals are flushed on this thread now.
    [[nodiscard]] static bool active() noexcept { return mask == 0 || (read() & mask) == mask; }

private:
#if defined(__x86_64__) || defined(__i386__)
    static constexpr unsigned long mask = 0x8040;  // MXCSR: flush to zero (bit 15), denormals are zero (bit 6)
    static unsigned long read() noexcept { return _mm_getcsr(); }
    static void write(unsigned long v) noexcept { _mm_setcsr(static_cast<unsigned>(v)); }
#elif defined(__aarch64__)
    static constexpr unsigned long mask = 1ul << 24;  // FPCR.FZ
    static unsigned long read() noexcept {
        unsigned long v;
        __asm__ volatile("mrs %0, fpcr" : "=r"(v));
        return v;
    }
    static void write(unsigned long v) noexcept { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
#else
    static constexpr unsigned long mask = 0;
    static unsigned long read() noexcept { return 0; }
    static void write(unsigned long) noexcept {}
#endif
    unsigned long saved_;
};

}  // namespace staticnet

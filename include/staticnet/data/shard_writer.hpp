#pragma once
/// @file
/// Writing shard files (the layout is in `shard_layout.hpp`), atomically.

#include "shard_layout.hpp"

namespace staticnet::data {

/// How `write_shard` lays a file out.
struct shard_write_options {
    /// Records per checksummed block: smaller blocks make partial reads cheaper to verify.
    std::uint32_t records_per_block = default_records_per_block;
};

/// Writes the samples `indices` of `data` (in that order) to `file`, atomically (a
/// temporary file in the same directory, flushed to disk and renamed over `file`, see
/// `core/file_io.hpp`), so a reader never sees a half-written shard. Pixels must be in
/// [0, 1] and labels in [0, num_classes). Throws `data_error` (bad content, I/O failure)
/// or `std::out_of_range` (an index >= data.size()).
inline void write_shard(const std::filesystem::path& file, const dataset& data, std::span<const std::size_t> indices,
                        const shard_write_options& options = {});

/// Writes the samples [first, last) of `data` to `file` (see the overload above).
inline void write_shard(const std::filesystem::path& file, const dataset& data, std::size_t first, std::size_t last,
                        const shard_write_options& options = {});

/// Writes the whole of `data` to `file`.
inline void write_shard(const std::filesystem::path& file, const dataset& data,
                        const shard_write_options& options = {});

// ===================================================================== implementation

inline void write_shard(const std::filesystem::path& file, const dataset& data, std::span<const std::size_t> indices,
                        const shard_write_options& options) {
    const std::string context = "cannot write shard file '" + file.string() + "'";
    const auto fail = [&](const std::string& problem) -> void { throw data_error(context + ": " + problem); };
    const auto& s = data.images.shape();
    if (s[1] == 0 || s[2] == 0 || s[3] == 0) fail("the data set's samples have an empty shape");
    if (s[1] > 0xFFFFFFFFu || s[2] > 0xFFFFFFFFu || s[3] > 0xFFFFFFFFu) fail("the sample shape does not fit 32 bits");
    if (data.labels.size() != data.size())
        fail("the data set has " + std::to_string(data.size()) + " images but " + std::to_string(data.labels.size()) +
             " labels");
    if (data.num_classes == 0 || data.num_classes > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        fail("invalid number of classes " + std::to_string(data.num_classes));
    if (options.records_per_block == 0) fail("records_per_block must be at least 1");

    detail::shard_header h;
    h.height = static_cast<std::uint32_t>(s[1]);
    h.width = static_cast<std::uint32_t>(s[2]);
    h.channels = static_cast<std::uint32_t>(s[3]);
    if (h.sample_bytes() > detail::max_shard_sample_bytes) fail("a sample of more than 2^30 bytes is not supported");
    h.label_type = data.num_classes <= 256 ? shard_label_u8 : shard_label_i32;
    h.num_classes = static_cast<std::uint32_t>(data.num_classes);
    h.records = indices.size();
    h.records_per_block = options.records_per_block;
    for (std::size_t i : indices)
        if (i >= data.size())
            throw std::out_of_range("write_shard '" + file.string() + "': sample index " + std::to_string(i) +
                                    " is out of range for a data set of " + std::to_string(data.size()) + " samples");

    ::staticnet::detail::write_file_atomically<data_error>(file, context, [&](::staticnet::detail::output_file& out) {
        out.write(detail::encode_header(h));
        // The CRC table precedes the records; write zeros now and fill it in at the end.
        std::vector<std::uint8_t> table(static_cast<std::size_t>(4 * h.blocks()));
        out.write(table);

        const auto sample = static_cast<std::size_t>(h.sample_bytes());
        const auto record = static_cast<std::size_t>(h.record_bytes());
        std::vector<std::uint8_t> block(std::min<std::size_t>(h.records_per_block, indices.size()) * record);
        const float* pixels = data.images.data();
        for (std::uint64_t j = 0; j < h.blocks(); ++j) {
            const std::size_t first = static_cast<std::size_t>(j) * h.records_per_block;
            const std::size_t n = std::min<std::size_t>(h.records_per_block, indices.size() - first);
            for (std::size_t r = 0; r < n; ++r) {
                const std::size_t idx = indices[first + r];
                std::uint8_t* p = block.data() + r * record;
                const float* src = pixels + idx * sample;
                for (std::size_t i = 0; i < sample; ++i) {
                    const float x = src[i];
                    if (!(x >= 0.0f && x <= 1.0f))  // also refuses NaN
                        fail("sample " + std::to_string(idx) + " has pixel value " + std::to_string(x) +
                             " at element " + std::to_string(i) + "; shards store pixels in [0, 1]");
                    p[i] = static_cast<std::uint8_t>(std::lround(static_cast<double>(x) * 255.0));
                }
                const std::int32_t label = data.labels(idx);
                if (label < 0 || static_cast<std::size_t>(label) >= data.num_classes)
                    fail("sample " + std::to_string(idx) + " has label " + std::to_string(label) + ", outside 0.." +
                         std::to_string(data.num_classes - 1));
                if (h.label_type == shard_label_i32)
                    detail::store_le(p + sample, static_cast<std::uint32_t>(label));
                else
                    p[sample] = static_cast<std::uint8_t>(label);
            }
            detail::store_le(table.data() + 4 * j, detail::crc32(block.data(), n * record));
            out.write(block.data(), n * record);
        }
        if (!table.empty()) {
            out.seek(shard_header_bytes);
            out.write(table);
        }
    });
}

inline void write_shard(const std::filesystem::path& file, const dataset& data, std::size_t first, std::size_t last,
                        const shard_write_options& options) {
    if (first > last || last > data.size())
        throw std::out_of_range("write_shard '" + file.string() + "': range [" + std::to_string(first) + ", " +
                                std::to_string(last) + ") is out of range for a data set of " +
                                std::to_string(data.size()) + " samples");
    std::vector<std::size_t> indices(last - first);
    for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = first + i;
    write_shard(file, data, indices, options);
}

inline void write_shard(const std::filesystem::path& file, const dataset& data, const shard_write_options& options) {
    write_shard(file, data, 0, data.size(), options);
}

}  // namespace staticnet::data

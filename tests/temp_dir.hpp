#pragma once
// `temp_dir`: a fresh, empty directory under the system's temporary directory for one test,
// removed with everything in it afterwards (permissions restored first, so a test may make
// a file unreadable).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

struct temp_dir {
    std::filesystem::path path;

    explicit temp_dir(std::string_view prefix = "staticnet_test") {
        static std::atomic<unsigned> counter{0};
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        std::string name(prefix);
        name += '_';
        name += std::to_string(stamp);
        name += '_';
        name += std::to_string(counter++);
        path = std::filesystem::temp_directory_path() / name;
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

// The training report page (io/report.hpp): what it holds, that it stays self-contained,
// and the file it writes. (tests/report/check_report.py renders an example's page in
// headless Chromium.)
#include <catch2/catch.hpp>

#include "temp_dir.hpp"

#include <staticnet/staticnet.hpp>
#include <staticnet/io/report.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sn = staticnet;

namespace {

using net = sn::sequential<sn::input<4, 4, 1>, sn::flatten, sn::dense<3, sn::softmax>>;

/// 30 images of 3 classes, told apart by which row is lit; named with characters HTML escapes.
sn::data::byte_dataset samples() {
    sn::data::byte_dataset d;
    d.images = xt::zeros<std::uint8_t>({std::size_t{30}, std::size_t{4}, std::size_t{4}, std::size_t{1}});
    d.labels = xt::zeros<std::int32_t>({std::size_t{30}});
    d.num_classes = 3;
    d.class_names = {"<zero>", "one & two", "three"};
    for (std::size_t i = 0; i < 30; ++i) {
        d.labels(i) = static_cast<std::int32_t>(i % 3);
        for (std::size_t x = 0; x < 4; ++x) d.images(i, i % 3, x, 0) = 200;
    }
    return d;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

/// The part of `html` from the section with this id to the next section.
std::string section(const std::string& html, const std::string& id) {
    const std::size_t begin = html.find("<section id=\"" + id + "\"");
    if (begin == std::string::npos) return {};
    return html.substr(begin, html.find("</section>", begin) - begin);
}

}  // namespace

TEST_CASE("the report holds curves, confusion matrix, worst images, inputs, settings and summary", "[report]") {
    sn::model<net, sn::adam, sn::sparse_categorical_crossentropy> model({.learning_rate = 1e-3f}, {.threads = 1, .seed = 1});
    const auto data = samples();
    const sn::fit_options options{.epochs = 2, .batch_size = 8, .verbose = false, .flip = true, .crop_padding = 1};
    const sn::history h = model.fit(data, options);
    const std::string html = sn::training_report_html(model, h, options, &data, &data,
                                                      {.title = "Run <1>", .settings = {{"program", "test"}},
                                                       .worst_images = 4, .input_images = 5});
    CHECK(html.starts_with("<!DOCTYPE html>"));
    CHECK(html.find("<title>Run &lt;1&gt;</title>") != std::string::npos);
    // Self-contained: a policy that allows inline images and styles only, no script, no link.
    CHECK(html.find("default-src 'none'; img-src data:; style-src 'unsafe-inline'") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("src=\"http") == std::string::npos);
    CHECK(html.find("href=") == std::string::npos);

    CHECK(count(section(html, "curves"), "<polyline") >= 2);
    // The confusion matrix: a cell per pair of classes, names escaped.
    const std::string confusion = section(html, "confusion");
    CHECK(count(confusion, "<rect") == 1 + 3 * 3);  // the background, then the cells
    CHECK(confusion.find("&lt;zero&gt;") != std::string::npos);
    CHECK(confusion.find("one &amp; two") != std::string::npos);
    // At most 4 misclassified images (a barely trained model has some), each a PNG.
    const std::size_t worst = count(section(html, "worst"), "<img");
    CHECK(worst <= 4);
    CHECK(count(section(html, "worst"), "src=\"data:image/png;base64,iVBORw0KGgo") == worst);
    // 5 training inputs, and the note says they are augmented.
    const std::string inputs = section(html, "inputs");
    CHECK(count(inputs, "<img") == 5);
    CHECK(inputs.find("random flips and crops") != std::string::npos);
    // Settings: the program's first, then the run's.
    const std::string settings = section(html, "settings");
    CHECK(settings.find("<th>program</th><td>test</td>") < settings.find("<th>batch_size</th><td>8</td>"));
    CHECK(count(section(html, "timings"), "<tr><td>") == 2);  // one row per epoch
    CHECK(section(html, "summary").find("dense_2 (softmax)") != std::string::npos);
}

TEST_CASE("a report without training data in memory shows no inputs, and is written to a file", "[report]") {
    sn::model<net, sn::sgd, sn::sparse_categorical_crossentropy> model({}, {.threads = 1});
    const auto data = samples();
    const sn::fit_options options{.epochs = 1, .verbose = false};
    const sn::history h = model.fit(data, options);
    temp_dir dir;
    sn::write_training_report(model, h, options, nullptr, &data, dir / "report.html");
    std::ifstream in(dir / "report.html");
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str() == sn::training_report_html(model, h, options, nullptr, &data));
    CHECK(section(text.str(), "inputs").empty());
    CHECK_THROWS_AS(sn::training_report_html(model, h, options, &data, nullptr), sn::error);
}

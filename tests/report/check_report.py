#!/usr/bin/env python3
"""Renders an example's report page in headless Chromium and checks what it shows.

    check_report.py PROGRAM WORKDIR [SCREENSHOT.png]

Trains PROGRAM (fashion_mnist) for 2 epochs on 1,000 images with --report (with
SCREENSHOT.png: 3 epochs on all images, for the documentation), then runs
Debian's chromium twice on the page, headless and offline:

 1. on a copy with a small probe script (the page itself has none, and its Content Security
    Policy forbids scripts): the page size, where the curves, the confusion matrix and the
    two image grids are, and whether every image decoded; read back with --dump-dom;
 2. on the page itself: a screenshot of the whole page at a laptop's width (1366 pixels),
    with the browser's console on stderr.

It then checks that the page fits the width, that no console message was logged (a blocked
resource or a broken image would be), that every image decoded, and, in the screenshot's
pixels, that the confusion matrix shows its blue diagonal and red confusions and that the
image grids and curves are drawn, not blank. The screenshot is WORKDIR/report.png (and
SCREENSHOT.png when given: docs/images/report.png is made so). Exit status 77 (skipped)
when chromium, python3-pil or the data set is missing.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

WIDTH = 1366  # a common laptop screen
DATA = "/usr/share/datasets/fashion-mnist"
# The sections the probe measures: name -> CSS selector.
SECTIONS = {"curves": "#curves svg", "confusion": "#confusion svg", "worst": "#worst .grid", "inputs": "#inputs .grid"}
PROBE = """<script>
window.addEventListener("load", () => {
  const out = {width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
               sections: {}};
  for (const [name, selector] of Object.entries(%s)) {
    const element = document.querySelector(selector);
    if (!element) continue;
    const r = element.getBoundingClientRect(), images = [...element.querySelectorAll("img")];
    out.sections[name] = {x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height, images: images.length,
                          decoded: images.filter(i => i.complete && i.naturalWidth > 0).length};
  }
  document.documentElement.dataset.probe = JSON.stringify(out);
});
</script>""" % json.dumps(SECTIONS)

failures = []


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(77)


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what)
    if not condition:
        failures.append(what)


def chromium(browser, profile, args, timeout=120):
    """Runs headless Chromium with a fresh profile and no network; returns (stdout, stderr)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tempfile.mkdtemp(prefix='profile_', dir=profile)}", "--hide-scrollbars",
               "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0"] + args
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return result.stdout, result.stderr


def console_messages(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def region(image, s):
    left, top = max(0, int(s["x"])), max(0, int(s["y"]))
    return image.crop((left, top, min(image.width, int(s["x"] + s["w"])), min(image.height, int(s["y"] + s["h"]))))


def shares(image):
    """Shares of the pixels of `image` that are dark, bright-ish, clearly blue and clearly red."""
    pixels = list(image.convert("RGB").getdata())
    n = max(1, len(pixels))
    dark = sum(1 for r, g, b in pixels if r + g + b < 120) / n
    light = sum(1 for r, g, b in pixels if 300 < r + g + b < 720) / n
    blue = sum(1 for r, g, b in pixels if b > r + 60 and b > g + 30) / n
    red = sum(1 for r, g, b in pixels if r > b + 60 and r > g + 60) / n
    non_white = sum(1 for r, g, b in pixels if r + g + b < 720) / n
    return dark, light, blue, red, non_white


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    program, workdir = sys.argv[1:3]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        skip("chromium is missing (Debian: chromium)")
    try:
        from PIL import Image
    except ImportError:
        skip("PIL is missing (Debian: python3-pil)")
    if not os.path.isdir(DATA):
        skip(f"{DATA} is missing (Debian: dataset-fashion-mnist)")

    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    page = os.path.join(workdir, "report.html")
    # The test trains for seconds; the documentation's screenshot comes from the run a user
    # would make (3 epochs of all 60,000 images: minutes).
    training = ["--epochs", "3"] if len(sys.argv) == 4 else ["--epochs", "2", "--limit", "1000"]
    result = subprocess.run([program, *training, "--threads", "2", "--json", "--report", page],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"{program} failed ({result.returncode}):\n{result.stderr}")
    with open(page, encoding="utf-8") as f:
        html = f.read()
    check("<script" not in html and not re.search(r"""(src|href)=["'](?!data:)""", html),
          "the page has no script and refers to nothing outside itself")

    # 1. The probe, on a copy whose policy lets it run.
    probe_page = os.path.join(workdir, "probe.html")
    probed = html.replace("style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'", 1)
    with open(probe_page, "w", encoding="utf-8") as f:
        f.write(probed.replace("</body>", PROBE + "\n</body>", 1))
    dom, stderr = chromium(browser, workdir, [f"--window-size={WIDTH},900", "--virtual-time-budget=10000",
                                              "--dump-dom", f"file://{probe_page}"])
    match = re.search(r'data-probe="([^"]*)"', dom)
    if match is None:
        sys.exit(f"the probe did not run; chromium said:\n{stderr[-3000:]}")
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    check(console_messages(stderr) == [], f"no console message while probing: {console_messages(stderr)[:3]}")
    check(probe["width"] <= WIDTH, f"the page fits {WIDTH} pixels across (it is {probe['width']})")
    for name in SECTIONS:
        check(name in probe["sections"], f"the page has its {name} section")
    sections = probe["sections"]

    # 2. The screenshot of the page as it is, as tall as the page.
    screenshot = os.path.join(workdir, "report.png")
    _, stderr = chromium(browser, workdir, [f"--window-size={WIDTH},{probe['height']}",
                                            f"--screenshot={screenshot}", f"file://{page}"])
    check(os.path.exists(screenshot), "chromium wrote the screenshot")
    messages = console_messages(stderr)
    check(messages == [], f"no console message (errors, blocked resources): {messages[:3]}")
    if failures:
        sys.exit(f"{len(failures)} checks failed")
    image = Image.open(screenshot)
    print(f"screenshot {image.width}x{image.height}")

    if "confusion" in sections:
        dark, light, blue, red, non_white = shares(region(image, sections["confusion"]))
        check(blue > 0.02, f"the confusion matrix shows its blue diagonal ({blue:.1%} of its pixels blue)")
        check(red > 0.01, f"the confusion matrix shows confusions in red ({red:.1%} red)")
    if "curves" in sections:
        dark, light, blue, red, non_white = shares(region(image, sections["curves"]))
        check(0.01 < non_white < 0.5, f"the curves are drawn ({non_white:.1%} of their pixels not white)")
    for name, count in (("worst", 24), ("inputs", 32)):
        s = sections.get(name)
        if s is None:
            continue
        check(s["images"] == count and s["decoded"] == count,
              f"{name}: {s['decoded']} of {s['images']} images decoded, {count} expected")
        dark, light, blue, red, non_white = shares(region(image, s))
        # Fashion-MNIST: light garments on black; a blank or broken grid has neither.
        check(dark > 0.15 and light > 0.05, f"{name}: the images are drawn ({dark:.1%} dark, {light:.1%} light pixels)")

    if len(sys.argv) == 4:
        shutil.copyfile(screenshot, sys.argv[3])
    if failures:
        sys.exit(f"{len(failures)} checks failed")
    print("OK: the report renders in Chromium")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Compiles the C++ snippets of README.md and docs/*.md (CTest: docs:snippets).

    scripts/doc_snippets.py --list
    scripts/doc_snippets.py --cxx g++ -- -Iinclude [more compiler flags]

Every ```cpp block is one of these, said by a comment on the line before its fence:

    (none, with `int main`) or program       a whole program, compiled as it is
    <!-- snippet: namespace -->              declarations: compiled at namespace scope
    <!-- snippet: function -->               statements: compiled in a function body that
                                             provides `net`, `reference_cnn`, `data`, `train`,
                                             `test`, `model`, `options`, `h`, `resume`, `log`,
                                             `steps_per_epoch` (CONTEXT_* below)
    <!-- snippet: function +previous -->     the same, after the previous block of the page
                                             (which must be `namespace`), e.g. a layer and its test
    <!-- snippet: fragment -->               not C++ on its own (`...`, placeholders): skipped

A block without a marker and without `int main` is an error, so a new snippet is either
compiled or explicitly a fragment. `#include` lines of wrapped blocks move to the top.
Each program is compiled alone, the wrapped blocks together (each in a namespace of its own),
with -fsyntax-only (templates are still instantiated); `#line` directives make the
compiler's messages point at the Markdown file and line. Standard library only.
"""

import argparse
import concurrent.futures
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/*.md"]

FENCE = re.compile(r"^```cpp\s*$")
MARKER = re.compile(r"^<!-- snippet: (program|namespace|function|fragment)( \+previous)? -->$")

PRELUDE = """#include <staticnet/staticnet.hpp>
#include <iostream>
#include <stdexcept>
#include <vector>
namespace sn = staticnet;
"""

# What a `function` snippet may use without declaring it: the names the guides' prose
# introduces (a network type, the data set, a model, its fit options and history).
CONTEXT_TYPES = """using net = sn::sequential<sn::input<28, 28, 1>, sn::conv2d<32, 3, sn::relu>, sn::max_pool2d<2>,
                           sn::flatten, sn::dense<10, sn::softmax>>;
using reference_cnn = net;
"""
CONTEXT_VARIABLES = """    bool resume = argc > 1;
    auto data = sn::data::load_fashion_mnist();
    auto& train = data.train;
    auto& test = data.test;
    sn::model<net, sn::adam, sn::sparse_categorical_crossentropy> model;
    sn::fit_options options;
    sn::history h;
    std::vector<double> log;
    std::size_t steps_per_epoch = train.size() / 32;
"""


class Snippet:
    def __init__(self, page, line, kind, after_previous, code):
        self.page, self.line, self.kind, self.after_previous, self.code = page, line, kind, after_previous, code
        self.previous = None  # the snippet it continues

    def where(self):
        return f"{self.page}:{self.line}"


def extract(root, pages):
    snippets, problems = [], []
    for page in pages:
        lines = (root / page).read_text().split("\n")
        page_snippets = []
        i = 0
        while i < len(lines):
            if not FENCE.match(lines[i]):
                i += 1
                continue
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                problems.append(f"{page}:{i + 1}: a ```cpp block that is never closed")
                break
            code = "\n".join(lines[i + 1:end]) + "\n"
            marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
            kind = marker.group(1) if marker else ("program" if "int main(" in code else None)
            if kind is None:
                problems.append(f"{page}:{i + 1}: a ```cpp block that is not a program and has no "
                                f"'<!-- snippet: namespace|function|fragment -->' on the line before it")
            else:
                s = Snippet(page, i + 2, kind, bool(marker and marker.group(2)), code)
                if s.after_previous:
                    if not page_snippets or page_snippets[-1].kind != "namespace":
                        problems.append(f"{s.where()}: '+previous' needs a `namespace` block before it")
                    else:
                        s.previous = page_snippets[-1]
                page_snippets.append(s)
            i = end + 1
        snippets += page_snippets
    return snippets, problems


def located(s):
    return f'#line {s.line} "{s.page}"\n{s.code}'


def without_includes(s):
    return "\n".join(l for l in s.code.split("\n") if not l.startswith("#include")) + "\n"


def wrapped(s, number):
    """Snippet s in a namespace of its own (the blocks of a page must not see each other)."""
    text = f"namespace snippet_{number} {{\n"
    if s.previous:
        text += f'#line {s.previous.line} "{s.previous.page}"\n' + without_includes(s.previous)
    if s.kind == "namespace":
        text += f'#line {s.line} "{s.page}"\n' + without_includes(s)
    else:
        # The context in a namespace of its own: its names give way to the previous block's.
        text += ('#line 1 "(snippet context)"\nnamespace context {\n' + CONTEXT_TYPES +
                 "[[maybe_unused]] static void snippet(int argc) {\n" + CONTEXT_VARIABLES + "    {\n" +
                 f'#line {s.line} "{s.page}"\n' + without_includes(s) + "    }\n}\n}  // namespace context\n")
    return text + f'#line 1 "(snippet context)"\n}}  // namespace snippet_{number}\n'


def translation_units(snippets):
    """(name, source, snippets): each program alone, every wrapped block in one unit (the
    headers are parsed once; #line keeps the messages at their Markdown lines)."""
    units = [(s.where(), located(s), [s]) for s in snippets if s.kind == "program"]
    rest = [s for s in snippets if s.kind != "program"]
    if rest:
        includes = sorted({l for s in rest for x in (s.previous, s) if x for l in x.code.split("\n")
                           if l.startswith("#include")})
        text = PRELUDE + "\n".join(includes) + "\n" + "".join(wrapped(s, i) for i, s in enumerate(rest))
        units.append(("the wrapped blocks", text, rest))
    return units


def compile_one(cxx, flags, unit, directory):
    name, source, members = unit
    path = pathlib.Path(directory) / (re.sub(r"[^A-Za-z0-9]+", "_", name) + ".cpp")
    path.write_text(source)
    run = subprocess.run([cxx, "-std=c++20", "-fsyntax-only", *flags, str(path)], capture_output=True, text=True,
                         cwd=ROOT)
    return unit, run.returncode, run.stdout + run.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the snippets and how each is compiled")
    parser.add_argument("--cxx", default="c++")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", help="only the snippets whose page:line contains this")
    parser.add_argument("--no-mpi", action="store_true", help="skip the snippets that include comm/mpi.hpp")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT)
    parser.add_argument("flags", nargs="*", help="compiler flags (after --)")
    args = parser.parse_args()

    pages = sorted({str(p.relative_to(args.root)) for pattern in PAGES for p in args.root.glob(pattern)})
    snippets, problems = extract(args.root, pages)
    for p in problems:
        print(p, file=sys.stderr)
    if args.list:
        for s in snippets:
            print(f"{s.where()}: {s.kind}{' +previous' if s.previous else ''}")
        return 1 if problems else 0
    def wanted(s):
        if s.kind == "fragment" or (args.only and args.only not in s.where()):
            return False
        if args.no_mpi and "staticnet/comm/mpi.hpp" in s.code:
            print(f"skipped: {s.where()} (needs MPI)")
            return False
        return True

    compiled = [s for s in snippets if wanted(s)]
    failed = []
    units = translation_units(compiled)
    with tempfile.TemporaryDirectory() as directory, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for (name, _, members), code, out in pool.map(lambda u: compile_one(args.cxx, args.flags, u, directory), units):
            print(f"{'ok' if code == 0 else 'FAILED'}: {name} ({', '.join(s.where() for s in members)})", flush=True)
            if code != 0:
                # The messages name the Markdown file and line of the snippet that broke.
                failed += members
                print(out, file=sys.stderr)
    fragments = len([s for s in snippets if s.kind == "fragment"])
    verdict = "compile" if not failed else "were compiled, with errors (above)"
    print(f"{len(compiled)} snippets {verdict} in {len(units)} translation units; {fragments} marked as fragments")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())

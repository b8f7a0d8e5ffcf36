"""The documentation site builds with ``mkdocs build --strict``, and every ```python block in docs/
and in README.md runs and prints what the page shows after it, so the pages cannot drift from the
code.

Each page's python blocks run in order, in one namespace, in a fresh subprocess whose working
directory is an empty temporary folder, with matplotlib's Agg backend. A failure names the page, the
line of the failing block in the .md file and the traceback (whose line numbers are the .md file's).
``pycon``, ``bash``, ``text`` and other blocks are not run. A ```text block that directly follows
a python block (blank lines only between) is what that block must print, to the character but for
trailing whitespace; output that varies from run to run (timings) goes after some prose instead.

The built site loads nothing from another host (scripts, stylesheets, fonts, images), so that it
reads the same offline, formulas included, and everything it loads from itself is there.
"""
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ["README.md"] + sorted(p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*.md"))
PAGE_TIMEOUT_S = 60
RUN_AS_PYTHON = {"python", "py", "python3"}

_OPENING_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def _language(info):
    """The language of a fence's info string: ```python, ```python title="x", ``` { .python }."""
    info = info.strip()
    if info.startswith("{"):
        classes = [word[1:] for word in info.strip("{}").split() if word.startswith(".")]
        return classes[0].lower() if classes else ""
    return info.split()[0].lower() if info else ""


def extract_code_blocks(markdown, languages=RUN_AS_PYTHON):
    """The fenced code blocks of ``markdown`` in ``languages``, in order, as (line, code) pairs:
    ``line`` is the 1-based line of the block's first code line in the markdown text, ``code`` the
    block with the fence's indentation removed. Fences follow CommonMark: a block closes at a fence
    of the same character at least as long as the opening one, so a ```python shown inside a
    ````markdown block is not extracted."""
    blocks = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPENING_FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(r"^ *" + re.escape(fence[0]) + "{" + str(len(fence)) + r",} *$")
        body, j = [], i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            j += 1
        if _language(opening["info"]) in languages:
            blocks.append((i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def expected_outputs(markdown, blocks):
    """For each python block (as ``extract_code_blocks`` returns them), the text of a ```text
    block that follows it with only blank lines between, else None: what the page says the block
    prints. A printed result meant only as an illustration goes after some prose instead."""
    lines = markdown.splitlines()
    texts = dict(extract_code_blocks(markdown, {"text"}))
    expected = []
    for line, _ in blocks:
        end = line - 1  # the first code line's index; find the closing fence
        while not _OPENING_FENCE.match(lines[end]):
            end += 1
        nxt = end + 1
        while nxt < len(lines) and not lines[nxt].strip():
            nxt += 1
        expected.append(texts.get(nxt + 2))  # a text block's first code line is its fence's + 1
    return expected


# Runs in the subprocess: reads the page path and its blocks (JSON on stdin), executes them in
# one namespace and writes what each printed, as JSON, to stdout. Each block is compiled under
# the .md file's path, padded so that its line numbers are the file's: a traceback then points
# at, and shows, the failing line of the page.
_RUNNER = r"""
import contextlib, io, json, sys, traceback
page, path, blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
printed = []
for line, code in blocks:
    print(f"[test_docs] running the python block at {page}:{line}", file=sys.stderr, flush=True)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)
    except BaseException:
        print(out.getvalue(), end="", file=sys.stderr)
        print(f"{page}: the python block at line {line} failed:", file=sys.stderr)
        error, value, tb = sys.exc_info()
        traceback.print_exception(error, value, tb.tb_next)  # from the page's frame on
        sys.exit(1)
    printed.append(out.getvalue())
print(json.dumps(printed))
"""


def run_page(page, tmp_path):
    """Run the python blocks of ``page`` (a path relative to the repository root); fail the test
    with the page, the block's line and the traceback if one raises or the page takes too long,
    and with both texts where a block prints something else than the ```text block after it."""
    path = ROOT / page
    markdown = path.read_text(encoding="utf-8")
    blocks = extract_code_blocks(markdown)
    if not blocks:
        return
    env = dict(os.environ, MPLBACKEND="Agg", MINIDL_DATA=str(tmp_path / "minidl-data"),
               XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    work = tmp_path / "cwd"
    work.mkdir()
    try:
        done = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps([str(page), str(path), blocks]),
                              cwd=work, env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        running = [ln for ln in stderr.splitlines() if ln.startswith("[test_docs] running")]
        where = running[-1].split(" at ", 1)[1] if running else page
        pytest.fail(f"{page}: its python blocks did not finish within {PAGE_TIMEOUT_S} s; the block at {where} "
                    f"was running. Page blocks must run fast (a page well under 5 s, a tutorial under 20 s).",
                    pytrace=False)
    if done.returncode != 0:
        stderr = "\n".join(ln for ln in done.stderr.splitlines() if not ln.startswith("[test_docs] running"))
        pytest.fail(f"{stderr}\n--- stdout ---\n{done.stdout[-4000:]}", pytrace=False)
    printed = json.loads(done.stdout.splitlines()[-1])
    for (line, _), expected, got in zip(blocks, expected_outputs(markdown, blocks), printed):
        if expected is not None and got.rstrip() != expected.rstrip():
            pytest.fail(f"{page}: the python block at line {line} printed\n{got.rstrip()}\n--- but the page shows "
                        f"---\n{expected.rstrip()}", pytrace=False)


@pytest.mark.parametrize("page", PAGES)
def test_docs_code_blocks(page, tmp_path):
    run_page(page, tmp_path)


def test_extract_code_blocks():
    sample = "\n".join([
        "# Title",                   # 1
        "```python",                 # 2
        "x = 1",                     # 3
        "```",                       # 4
        "```bash",                   # 5
        "pip install minidl",        # 6
        "```",                       # 7
        "```pycon",                  # 8
        ">>> 1 + 1",                 # 9
        "```",                       # 10
        "````markdown",              # 11
        "```python",                 # 12
        "not run",                   # 13
        "```",                       # 14
        "````",                      # 15
        "!!! note",                  # 16
        "",                          # 17
        "    ```python",             # 18
        "    y = x + 1",             # 19
        "",                          # 20
        "    assert y == 2",         # 21
        "    ```",                   # 22
        "```text",                   # 23
        "2",                         # 24
        "```",                       # 25
    ])
    assert extract_code_blocks(sample) == [(3, "x = 1\n"), (19, "y = x + 1\n\nassert y == 2\n")]
    assert extract_code_blocks(sample, {"bash"}) == [(6, "pip install minidl\n")]
    # only the second python block is followed directly by a text block
    assert expected_outputs(sample, extract_code_blocks(sample)) == [None, "2\n"]


def test_a_block_must_print_the_text_shown_after_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Out\n\n```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n\n"
                    "```python\nprint('drifted')\n```\n```text\nas written\n```\n")
    with pytest.raises(pytest.fail.Exception) as failure:
        run_page(page, tmp_path)
    message = str(failure.value)
    assert f"{page}: the python block at line 12 printed\ndrifted\n--- but the page shows ---\nas written" in message


def test_failing_block_names_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Broken\n\n```python\nx = 1\n```\n\n```python\ny = x\nraise ValueError('boom')\n```\n")
    with pytest.raises(pytest.fail.Exception) as failure:
        run_page(page, tmp_path)
    message = str(failure.value)
    assert f"{page}: the python block at line 8 failed" in message
    assert f'File "{page}", line 9' in message and "raise ValueError('boom')" in message
    assert "ValueError: boom" in message


def test_reference_documents_every_module():
    """Every public module of minidl and minidl_models has a ``::: module`` entry in
    docs/reference/, so cross-references from the chapters to any object resolve."""
    documented = set()
    for page in (DOCS / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: *([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    modules = set()
    for package in ("minidl", "minidl_models"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if not any(part.startswith("_") for part in parts):
                modules.add(".".join(parts))
    missing = sorted(modules - documented)
    assert not missing, f"add a '::: module' entry to a page of docs/reference/ for each of {missing}"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The site, built once for the tests that need it: the finished ``mkdocs build --strict``
    and the folder it built into."""
    import mkdocs  # noqa: F401  (from the docs extra; missing, it must fail here, not skip)

    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return done, site


def test_docs_build_strictly(built_site):
    done, _ = built_site
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}{done.stderr}"


# Tags whose attributes name something the browser fetches as it shows the page (a plain <a href> is
# only followed when clicked), and the <link rel> values whose href it fetches or connects to.
_FETCHED_ATTRIBUTES = {"script": ("src",), "img": ("src", "srcset"), "source": ("src", "srcset"),
                       "iframe": ("src",), "embed": ("src",), "object": ("data",), "video": ("src", "poster"),
                       "audio": ("src",)}
_FETCHING_RELS = {"stylesheet", "preload", "prefetch", "modulepreload", "icon", "apple-touch-icon", "mask-icon",
                  "manifest", "preconnect", "dns-prefetch"}
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)|@import\s+(['"])(.*?)\3""", re.I)
_OTHER_HOST = re.compile(r"\s*([a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //, any scheme://


def css_urls(css):
    """The URLs a stylesheet (or a style attribute) fetches: its url()s and @imports."""
    return [m[2] if m[2] is not None else m[4] for m in _CSS_URL.finditer(css)]


class _PageLoads(HTMLParser):
    """Collects what an HTML page makes the browser fetch as ``(what, URL)`` pairs, ``what`` naming
    the tag and attribute (``<link href>``, ``<style>``). IE's conditional comments count as markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads, self._in_style = [], False

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        names = _FETCHED_ATTRIBUTES.get(tag, ())
        if tag == "link" and _FETCHING_RELS & set(attrs.get("rel", "").lower().split()):
            names = ("href",)
        for name in names:
            value = attrs.get(name, "").strip()
            urls = [part.split()[0] for part in value.split(",") if part.strip()] if name == "srcset" else [value]
            self.loads += [(f"<{tag} {name}>", url) for url in urls if url]
        self.loads += [(f"<{tag} style>", url) for url in css_urls(attrs.get("style", ""))]
        self._in_style = self._in_style or tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.loads += [("<style>", url) for url in css_urls(data)]

    def handle_comment(self, data):
        if data.lstrip().startswith("[if"):
            self.loads += page_loads(data.split("]>", 1)[-1])


def page_loads(html):
    """What the page ``html`` makes the browser fetch, as ``(what, URL)`` pairs."""
    parser = _PageLoads()
    parser.feed(html)
    parser.close()
    return parser.loads


def _missing_locally(url, base, site):
    """Whether ``url``, loaded by a file in folder ``base`` of ``site`` from the site itself, is not
    there; False for URLs that need no file (data:, about:)."""
    parts = urlsplit(url)
    if parts.scheme or not parts.path:
        return False
    target = site / unquote(parts.path).lstrip("/") if parts.path.startswith("/") else base / unquote(parts.path)
    if target.is_dir():
        target = target / "index.html"
    return not target.is_file()


def test_page_loads_finds_what_a_browser_would_fetch():
    page = """<html><head>
      <link rel="stylesheet" href="https://cdn.example.org/a.css"><link rel="shortcut icon" href="//cdn.example.org/i.ico">
      <link rel="canonical" href="https://example.org/page/"><link rel="stylesheet" href="css/local.css">
      <script src="http://cdn.example.org/a.js"></script><script>var u = "https://not.fetched/by.a.tag";</script>
      <style>@import "https://fonts.example.org/f.css"; p { background: url( '//img.example.org/b.png' ) }</style>
      <!--[if lt IE 9]><script src="https://cdn.example.org/shiv.js"></script><![endif]-->
      </head><body><a href="https://example.org/">a link</a>
      <img src="images/local.png" srcset="https://img.example.org/2x.png 2x, images/3x.png 3x">
      <div style="background-image: url(&quot;https://img.example.org/c.png&quot;)"></div></body></html>"""
    assert page_loads(page) == [
        ("<link href>", "https://cdn.example.org/a.css"), ("<link href>", "//cdn.example.org/i.ico"),
        ("<link href>", "css/local.css"), ("<script src>", "http://cdn.example.org/a.js"),
        ("<style>", "https://fonts.example.org/f.css"), ("<style>", "//img.example.org/b.png"),
        ("<script src>", "https://cdn.example.org/shiv.js"), ("<img src>", "images/local.png"),
        ("<img srcset>", "https://img.example.org/2x.png"), ("<img srcset>", "images/3x.png"),
        ("<div style>", "https://img.example.org/c.png")]
    remote = [url for _, url in page_loads(page) if _OTHER_HOST.match(url)]
    assert len(remote) == 8 and not any("local" in url or "3x" in url for url in remote)
    assert css_urls("@font-face { src: url(fonts/a.woff2?v=1) format('woff2'), url(\"data:font/woff;base64,AA\") }"
                    ) == ["fonts/a.woff2?v=1", "data:font/woff;base64,AA"]


def test_built_site_loads_nothing_from_another_host(built_site):
    done, site = built_site
    assert done.returncode == 0, "the site did not build (see test_docs_build_strictly)"
    remote, missing, mathjax = [], [], set()
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            loads = page_loads(path.read_text(encoding="utf-8"))
            mathjax |= {url for _, url in loads if url.endswith("tex-chtml.js")}
        elif path.suffix == ".css":
            loads = [("url()", url) for url in css_urls(path.read_text(encoding="utf-8"))]
        else:
            continue
        where = path.relative_to(site).as_posix()
        remote += [f"{where}: {what} {url}" for what, url in loads if _OTHER_HOST.match(url)]
        missing += [f"{where}: {what} {url}" for what, url in loads
                    if not _OTHER_HOST.match(url) and _missing_locally(url, path.parent, site)]
    assert not remote, ("the built site loads these from another host, so offline they are missing; serve them "
                        "from docs/assets/ instead:\n" + "\n".join(remote[:40]))
    assert not missing, "the built site loads these from itself, but they are not in it:\n" + "\n".join(missing[:40])
    # the pages load MathJax from the site, and its CHTML output finds its fonts next to it
    assert mathjax, "no page loads MathJax (assets/mathjax/es5/tex-chtml.js)"
    fonts = site / "assets" / "mathjax" / "es5" / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file() and (fonts / "MathJax_Math-Italic.woff").is_file()

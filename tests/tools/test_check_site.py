"""tools/check_site.py, the browser check, on a small hand-made site: does it catch what it claims to?

Each broken page has one known fault (an image that is not there, a console.error, an uncaught exception,
no code block); the checker must name that fault on that page, and pass the good pages. Skips without a
Chromium (the check itself only runs in CI where one is installed).
"""
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import check_site  # noqa: E402

CHROMIUM = next((shutil.which(n) for n in check_site.CHROMIUM_NAMES if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")


def png_1x1() -> bytes:
    """A valid 1x1 grey PNG, written by hand (signature, IHDR, IDAT, IEND)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


CODE = "<pre><code>x = 1</code></pre>"
PAGES = {
    "index.html": "<p>home: no code, and on the no-code list</p>",
    "good/index.html": CODE + '<img src="../pixel.png" alt="a pixel">',
    "broken-image/index.html": CODE + '<img src="missing.png" alt="gone">',
    "console-error/index.html": CODE + "<script>console.error('boom from the page')</script>",
    "exception/index.html": CODE + "<script>undefined_function_xyz()</script>",
    "no-code/index.html": "<p>words only</p>",
    # a resource from off the machine (like a theme's web fonts): the site must work with no network
    # looks like a Material for MkDocs page, but its JavaScript never ran: no copy button, toggle or search
    "material-without-js/index.html": "<header data-md-component='header'></header><div class='md-content'>"
                                      + CODE + CODE + "</div>",
    "off-site/index.html": CODE + "<link rel='stylesheet' href='https://fonts.invalid/site.css'>",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "pixel.png").write_bytes(png_1x1())
    for rel, body in PAGES.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{rel}</title>"
                                f"<link rel='icon' href='data:,'></head><body>{body}</body></html>")
    out = site.parent / "out.txt"
    with open(out, "w") as f:
        failing = check_site.run_check(site, CHROMIUM, ["index.html"], timeout=60, out=f)
    lines = out.read_text().splitlines()
    by_page, page = {}, None
    for line in lines[1:-1]:
        if line.startswith("  ok ") or line.startswith("  FAIL "):
            status, page = line.split()[:2]
            by_page[page] = {"status": status, "problems": []}
        else:
            by_page[page]["problems"].append(line.strip())
    return failing, by_page, lines


@needs_chromium
def test_every_page_is_opened_and_counted(report):
    failing, by_page, lines = report
    assert sorted(by_page) == sorted(PAGES)
    assert failing == 6
    assert lines[-1] == f"check_site: {len(PAGES)} pages checked, 6 with errors"


@needs_chromium
@pytest.mark.parametrize("page", ["index.html", "good/index.html"])
def test_good_pages_pass(report, page):
    assert report[1][page] == {"status": "ok", "problems": []}


@needs_chromium
@pytest.mark.parametrize("page, expected", [
    ("broken-image/index.html", "image did not load: missing.png"),
    ("broken-image/index.html", "HTTP 404: "),
    ("console-error/index.html", "console.error: boom from the page"),
    ("exception/index.html", "uncaught exception: ReferenceError: undefined_function_xyz is not defined"),
    ("no-code/index.html", "no code block on the page"),
    ("material-without-js/index.html", "2 code blocks without a copy button"),
    ("material-without-js/index.html", "no light/dark toggle"),
    ("material-without-js/index.html", "no search box"),
    ("off-site/index.html", "request failed (net::ERR_"),  # the name does not resolve, or no network
])
def test_each_fault_is_named_on_its_page(report, page, expected):
    entry = report[1][page]
    assert entry["status"] == "FAIL"
    assert any(p.startswith(expected) for p in entry["problems"]), entry["problems"]


@needs_chromium
def test_exit_status_and_missing_site(tmp_path, capsys):
    assert check_site.main(["--site", str(tmp_path / "nothing"), "--chromium", CHROMIUM]) == 2
    assert capsys.readouterr().err.startswith("error: no site at ")


def test_missing_browser_is_one_line_and_status_2(tmp_path, capsys):
    assert check_site.main(["--site", str(tmp_path), "--chromium", str(tmp_path / "no-chromium")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Chromium at ") and err.count("\n") == 1


@needs_chromium
def test_an_off_site_request_is_named_with_its_url(report):
    problems = report[1]["off-site/index.html"]["problems"]
    assert [p for p in problems if p.startswith("request failed (net::ERR_")] == [
        next(p for p in problems if p.endswith(": https://fonts.invalid/site.css"))]


@needs_chromium
def test_a_browser_that_dies_mid_check_is_a_check_error(tmp_path):
    browser = check_site.Browser(CHROMIUM, timeout=30)
    try:
        browser.proc.kill()
        browser.proc.wait()
        with pytest.raises(check_site.CheckError, match="lost the connection to Chromium"):
            check_site.check_page(browser, "about:blank", need_code=False)
    finally:
        browser.close()


@needs_chromium
def test_a_site_with_a_search_index_but_no_working_search_fails(tmp_path):
    """A built Material site has search/: its home page must answer a search in the browser."""
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "search_index.json").write_text('{"docs": []}')
    (tmp_path / "index.html").write_text(f"<!doctype html><html><head><link rel='icon' href='data:,'></head>"
                                         f"<body>{CODE}</body></html>")
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        assert check_site.run_check(tmp_path, CHROMIUM, [], timeout=60, out=f) == 1
    text = out.read_text()
    assert f"searching for {check_site.SEARCH_TERM!r} finds nothing" in text

#!/usr/bin/env python3
"""The browser check: build the docs site and open every page in headless Chromium.

    python tools/check_site.py                      # mkdocs build --strict, then every page
    python tools/check_site.py --site DIR           # an already-built site, no build
    python tools/check_site.py --chromium PATH      # default: chromium / chromium-browser / google-chrome on PATH

A page fails when, in a real browser:
  - anything is logged as an error to the console (console.error, an uncaught exception, a resource the
    browser could not load, a blocked request);
  - a request fails (an HTTP status >= 400, or a network error: the site must work with no network);
  - an <img> does not load (naturalWidth == 0 once the page has loaded);
  - the page shows no code block, unless it is on the NO_CODE_OK list (the home page and the notes);
  - on a Material for MkDocs page: a code block without its copy button, no light/dark toggle, no search
    box (the theme's JavaScript builds them: missing, it did not run); on the home page, a search for
    SEARCH_TERM that finds nothing (the search runs in the browser, from the index the build wrote).

The site is served from 127.0.0.1 by Python's http.server in a thread; Chromium is driven over the
Chrome DevTools Protocol (a websocket, `websocket-client`): one tab per page, its console, network and
image state read back. Nothing is downloaded: the browser is the system's (Debian's `chromium`).
Exit status: 0 all pages pass, 1 some page fails, 2 the check could not run (no Chromium, build failed).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Pages allowed to show no code block (paths relative to the site root, fnmatch patterns).
# Every lesson and kernel page must show code: that is what the pages are for.
NO_CODE_OK = ["index.html", "notes/*"]

CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
]

# Run in the page once it has loaded: every image made to load (lazy ones too), then what we check.
PAGE_PROBE = """(async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  const content = document.querySelector(".md-content") || document.body;
  return {
    title: document.title,
    images: imgs.length,
    broken: imgs.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.getAttribute("src")),
    code_blocks: content.querySelectorAll("pre > code").length,
    // Material for MkDocs builds these in the browser: present only if its JavaScript ran
    material: document.querySelector("[data-md-component]") !== null,
    copy_buttons: content.querySelectorAll(".md-code__button[data-md-type=copy]").length,
    palette_schemes: document.querySelectorAll("[data-md-component=palette] input[data-md-color-scheme]").length,
    search: document.querySelector("[data-md-component=search-query]") !== null,
  };
})()"""


# Typed into a Material site's search box once (the home page): the worker must load the index and answer.
SEARCH_TERM = "attention"
SEARCH_PROBE = """(async (term) => {
  const input = document.querySelector("[data-md-component=search-query]");
  if (!input) return -1;
  input.focus();
  input.value = term;
  input.dispatchEvent(new Event("input", {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: term.slice(-1)}));
  for (let i = 0; i < 100; i++) {  // up to 10 s for the worker to build its index
    const n = document.querySelectorAll(".md-search-result__item").length;
    if (n) return n;
    await new Promise(r => setTimeout(r, 100));
  }
  return 0;
})"""


class CheckError(Exception):
    """The check could not run (as opposed to: a page failed it)."""


# ---------------------------------------------------------------- the site: build and serve
def build_site(out_dir: Path) -> float:
    """mkdocs build --strict into out_dir; returns the seconds it took."""
    t0 = time.perf_counter()
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out_dir)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise CheckError(f"mkdocs build --strict failed:\n{tail}")
    return time.perf_counter() - t0


def site_pages(site: Path) -> list[str]:
    """Every HTML page of a built site, as paths relative to its root (404.html excluded)."""
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    return [p for p in pages if p != "404.html"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the browser check reports failed requests itself
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `site` on 127.0.0.1 (a free port) from a daemon thread; returns (server, base URL)."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# ---------------------------------------------------------------- the browser: Chromium over CDP
def find_chromium(explicit: str | None) -> str:
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise CheckError(f"no Chromium at {explicit}")
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise CheckError("Chromium not found (Debian: apt-get install chromium)")


class Browser:
    """A headless Chromium and one DevTools websocket to it; pages are opened as targets on it."""

    def __init__(self, executable: str, timeout: float):
        try:
            import websocket  # websocket-client
        except ImportError:
            raise CheckError("the browser check needs websocket-client (pip install -e '.[dev]')") from None
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="check-site-profile-")
        self.proc = subprocess.Popen([executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ws_url = self._devtools_url()
            self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        except Exception:
            self.close()
            raise
        self.next_id = 0
        self.events: list[dict] = []  # events read while waiting for a command's answer
        self.version = self.send("Browser.getVersion")["product"]

    def _devtools_url(self) -> str:
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckError(f"Chromium exited at start (status {self.proc.returncode})")
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            time.sleep(0.05)
        raise CheckError(f"Chromium did not open its DevTools port in {self.timeout:.0f} s")

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one CDP command and wait for its answer; events that arrive meanwhile are kept."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            self.ws.send(json.dumps(msg))
        except Exception as e:  # Chromium crashed or was killed
            raise CheckError(f"lost the connection to Chromium: {e}") from None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = self._recv(deadline - time.monotonic())
            if reply is None:
                continue
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CheckError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
        raise CheckError(f"{method}: no answer from Chromium in {self.timeout:.0f} s")

    def _recv(self, wait: float) -> dict | None:
        import websocket
        self.ws.settimeout(max(wait, 0.01))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as e:  # Chromium crashed or was killed
            raise CheckError(f"lost the connection to Chromium: {e}") from None

    def wait_event(self, method: str | None, session: str, wait: float) -> bool:
        """Read events until `method` arrives for `session` (True) or `wait` seconds pass (False).
        With method=None: just keep reading events for `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            if method and any(ev["method"] == method and ev.get("sessionId") == session for ev in self.events):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            msg = self._recv(left)
            if msg is not None and "method" in msg:
                self.events.append(msg)

    def close(self):
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---------------------------------------------------------------- one page
def check_page(browser: Browser, url: str, need_code: bool, settle: float = 0.3,
               search: str | None = None) -> tuple[list[str], dict]:
    """Open `url` in a fresh tab; returns (the problems found, what the page probe saw).
    With `search`: also type it into the search box and count the results (seen["search_results"])."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.events.clear()
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        nav = browser.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            return [f"navigation failed: {nav['errorText']}"], {}
        if not browser.wait_event("Page.loadEventFired", session, browser.timeout):
            return [f"the page did not finish loading in {browser.timeout:.0f} s"], {}
        probe = browser.send("Runtime.evaluate", {"expression": PAGE_PROBE, "awaitPromise": True,
                                                  "returnByValue": True}, session=session)
        if "exceptionDetails" in probe:
            return [f"page probe failed: {probe['exceptionDetails'].get('text')}"], {}
        seen = probe["result"]["value"]
        if search:
            found = browser.send("Runtime.evaluate", {"expression": f"{SEARCH_PROBE}({json.dumps(search)})",
                                                      "awaitPromise": True, "returnByValue": True}, session=session)
            seen["search_results"] = found.get("result", {}).get("value", 0)
        browser.wait_event(None, session, settle)  # late console messages and requests
        problems = page_problems([ev for ev in browser.events if ev.get("sessionId") == session], seen, need_code)
        if search and seen["search_results"] <= 0:
            problems.append(f"searching for {search!r} finds nothing")
        return problems, seen
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


def page_problems(events: list[dict], seen: dict, need_code: bool) -> list[str]:
    """The failures shown by one page's CDP events and its probe result."""
    problems, failed_urls, urls = [], set(), {}
    for ev in events:
        method, p = ev["method"], ev.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
        elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
            failed_urls.add(p["response"]["url"])
            problems.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            if url not in failed_urls:
                failed_urls.add(url)
                problems.append(f"request failed ({p.get('errorText')}): {url}")
    for ev in events:
        method, p = ev["method"], ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text", "")
            problems.append(f"uncaught exception: {desc.splitlines()[0] if desc else '?'}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            entry = p["entry"]
            if entry.get("source") == "network" and entry.get("url") in failed_urls:
                continue  # already reported as a failed request
            problems.append(f"console error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())
    for src in seen.get("broken", []):
        problems.append(f"image did not load: {src}")
    if need_code and seen.get("code_blocks", 0) == 0:
        problems.append("no code block on the page")
    if seen.get("material"):  # the theme's features, as the reader gets them
        if seen["copy_buttons"] < seen["code_blocks"]:
            problems.append(f"{seen['code_blocks'] - seen['copy_buttons']} code blocks without a copy button")
        if seen["palette_schemes"] < 2:
            problems.append("no light/dark toggle")
        if not seen["search"]:
            problems.append("no search box")
    return problems


# ---------------------------------------------------------------- main
def run_check(site: Path, chromium: str, no_code_ok: list[str], timeout: float, out=sys.stdout) -> int:
    """Check every page of a built site; prints one line per page; returns the number of failing pages."""
    pages = site_pages(site)
    if not pages:
        raise CheckError(f"no HTML pages under {site}")
    server, base = serve(site)
    browser = Browser(chromium, timeout)
    failing = 0
    try:
        print(f"check_site: {browser.version}, {len(pages)} pages from {base}", file=out)
        width = max(len(p) for p in pages)
        for page in pages:
            need_code = not any(fnmatch.fnmatch(page, pat) for pat in no_code_ok)
            search = SEARCH_TERM if page == "index.html" and (site / "search").is_dir() else None
            problems, seen = check_page(browser, base + page, need_code, search=search)
            what = f"code blocks: {seen.get('code_blocks', 0)}, images: {seen.get('images', 0)}"
            if search:
                what += f", search {search!r}: {seen.get('search_results', 0)} results"
            if problems:
                failing += 1
                print(f"  FAIL {page:<{width}}  {what}", file=out)
                for problem in problems:
                    print(f"         {problem}", file=out)
            else:
                print(f"  ok   {page:<{width}}  {what}", file=out)
        print(f"check_site: {len(pages)} pages checked, {failing} with errors", file=out)
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    return failing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, help="an already-built site to check (default: build one with mkdocs)")
    ap.add_argument("--chromium", help="the browser (default: found on PATH)")
    ap.add_argument("--no-code-ok", action="append", metavar="PATTERN",
                    help=f"pages allowed without code (fnmatch, repeatable; default {NO_CODE_OK})")
    ap.add_argument("--timeout", type=float, default=60, help="seconds for Chromium to answer or a page to load")
    args = ap.parse_args(argv)
    try:
        chromium = find_chromium(args.chromium)
        with tempfile.TemporaryDirectory(prefix="check-site-") as tmp:
            site = args.site
            if site is None:
                site = Path(tmp) / "site"
                secs = build_site(site)
                print(f"check_site: mkdocs build --strict: ok ({secs:.1f} s)")
            elif not site.is_dir():
                raise CheckError(f"no site at {site}")
            failing = run_check(site, chromium, args.no_code_ok or NO_CODE_OK, args.timeout)
    except CheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

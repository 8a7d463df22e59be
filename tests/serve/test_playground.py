"""The web playground in headless Chromium: generate text, translate a CODE-2 sentence, read the page.

Needs Debian's chromium (/usr/bin/chromium) and the `playwright` Python package; the
browser Playwright would download is never used. Without them these tests skip and say why.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

import tinylm

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="browser tests need Debian's chromium (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="browser tests need the playwright package (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    # Nothing outside the server may be fetched: any other request fails the test.
    outside: list[str] = []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                  else (outside.append(route.request.url), route.abort()))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not outside and not errors, (outside, errors)


def set_range(page, element_id: str, value: float) -> None:
    page.eval_on_selector(f"#{element_id}", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                          str(value))


def test_generate_streams_the_completion_into_the_page(page, server, checkpoint):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('tiny')", timeout=15000)
    assert page.is_visible("#view-text") and page.is_hidden("#view-code2")  # a model of no task: the Text view
    page.fill("#prompt", "To be")
    set_range(page, "temperature", 0)
    set_range(page, "max_tokens", 24)
    assert page.inner_text("#temperature-value") == "0"
    page.click("#generate")
    page.wait_for_selector("#stats[data-done='1']", timeout=30000)
    expected = tinylm.load(checkpoint).generate("To be", temperature=0.0, max_new_tokens=24)
    assert page.eval_on_selector("#out-text", "el => el.textContent") == expected
    assert page.eval_on_selector("#out-prompt", "el => el.textContent") == "To be"
    stats = page.inner_text("#stats")
    assert stats.startswith("24 tokens") and "tokens/s" in stats and "finish: length" in stats
    assert page.is_hidden("#error")


def test_a_server_error_is_shown(page, server):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('tiny')", timeout=15000)
    page.fill("#prompt", "x" * 100)  # longer than the 64-token context
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])", timeout=15000)
    assert "context" in page.inner_text("#error")


def test_translate_shows_assembly_validity_and_machine_state(page, code2_server):
    sentence = "Suma r1 y r2 y guarda el resultado en r3"
    page.goto(code2_server.url + "/")
    # A CODE-2 model: the playground opens on the CODE-2 view by itself.
    page.wait_for_function("!document.getElementById('view-code2').hidden", timeout=15000)
    assert page.is_hidden("#view-text") and "active" in page.get_attribute("#tab-code2", "class")
    page.fill("#spanish", sentence)
    page.click("#translate")
    page.wait_for_selector("#assembly[data-done='1']", timeout=30000)
    api = httpx.post(code2_server.url + "/v1/code2/translate", json={"text": sentence}, timeout=60).json()
    assert page.eval_on_selector("#assembly", "el => el.textContent") == api["assembly"]
    assert page.inner_text("#validity") == ("valid CODE-2" if api["valid"] else "invalid syntax")
    assert page.inner_text("#assembles") == ("assembles" if api["assembles"] else "does not assemble")
    cells = page.eval_on_selector_all("#registers td", "els => els.map(e => e.textContent)")
    assert cells == [f"{name}={value:04X}" for name, value in api["registers"].items()]
    assert page.inner_text("#run-status") == api["message"]


def test_text_view_frames_the_prompt_as_the_model_was_trained(page, code2_server, code2_checkpoint):
    """A CODE-2 line model answers `[bos] sentence [sep]`: the Text view gets what lm.generate gets."""
    sentence = "Suma r1 y r2 y guarda el resultado en r3"
    page.goto(code2_server.url + "/")
    page.wait_for_function("!document.getElementById('view-code2').hidden", timeout=15000)
    page.click("#tab-text")
    assert page.is_visible("#view-text") and page.is_hidden("#view-code2")
    page.fill("#prompt", sentence)
    set_range(page, "temperature", 0)
    set_range(page, "max_tokens", 24)
    page.click("#generate")
    page.wait_for_selector("#stats[data-done='1']", timeout=30000)
    lm = tinylm.load(code2_checkpoint)
    assert lm.prompt_format.name == "paired"
    assert page.eval_on_selector("#out-text", "el => el.textContent") == lm.generate(
        sentence, temperature=0.0, max_new_tokens=24)

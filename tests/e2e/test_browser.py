"""The UI in a real headless browser: `streamlit run ui/app.py` on a seeded database. Pages opened
by URL on a fresh server show only the sign-in, or a refusal outside the role, and never a
traceback; a steward classifies a photo, sees the evidence, revokes its licence and sees the
change."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from asifdb.services.model import Encoders
from tests.ui.seeding import CIFAR, SHIP_LICENCE, K, Seeded, seed

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def seeded(
    pg_server: str, shared_data: Path, tmp_path_factory: pytest.TempPathFactory, encoders: Encoders
) -> Seeded:
    return seed(pg_server, shared_data, tmp_path_factory.mktemp("e2e-seed"), encoders)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ui_url(seeded: Seeded, tmp_path: Path, data_dir: Path) -> Iterator[str]:
    """`streamlit run ui/app.py` on a free port against a copy of the seeded database."""
    env = {
        **os.environ,
        "DATABASE_URL": seeded.clone(data_dir),
        "DATA_DIR": str(data_dir),
        "K": str(K),
    }
    env.pop("REDIS_URL", None)
    port = _free_port()
    log = tmp_path / "streamlit.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "ui/app.py",
            "--server.address=127.0.0.1",
            f"--server.port={port}",
            "--server.headless=true",
            "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "streamlit did not start:\n" + log.read_text()
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok":
                break
        except httpx.TransportError:
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        # The first classification loads the encoders in the server: allow for it.
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        yield page
        browser.close()


def _prediction(page: Page) -> str:
    """The predicted label, once the script run that shows it has finished."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    return page.get_by_test_id("stMetricValue").first.inner_text()


def test_classify_see_evidence_revoke_and_see_the_prediction_change(
    ui_url: str, page: Page, seeded: Seeded, shared_data: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]

    page.goto(ui_url)
    page.get_by_label("API key", exact=True).fill(seeded.keys["steward"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Classify & explain")).to_be_visible()

    page.locator("input[type=file]").set_input_files(image)
    # Typed labels and a click on Classify: no Ctrl+Enter needed (they are one form).
    page.get_by_label("Labels, one per line or separated by commas").fill(", ".join(CIFAR))
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.get_by_text("The pairs that carried")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    assert _prediction(page) == "ship"
    revoke = page.get_by_role("button", name=f"Revoke licence {SHIP_LICENCE}")
    expect(revoke).to_be_visible()
    page.screenshot(path=ARTIFACTS / "e2e-1-classified.png", full_page=True)

    page.get_by_label("Reason for revoking").fill("the ship photos' licence expired")
    revoke.click()
    expect(page.get_by_text("Prediction changed")).to_be_visible()
    assert _prediction(page) != "ship"
    page.screenshot(path=ARTIFACTS / "e2e-2-revoked.png", full_page=True)


def _settled(page: Page) -> str:
    """The app's text once its script run has finished."""
    expect(page.get_by_test_id("stApp")).to_be_visible()
    page.wait_for_timeout(500)  # the run starts after the websocket connects
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    return page.get_by_test_id("stApp").inner_text()


def _sign_in(page: Page, key: str) -> None:
    """On the page open now (a reload is a new session: signed out again)."""
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()


def _no_trace(text: str) -> None:
    for leak in ("Traceback", 'File "', str(ROOT), "Error:", "site-packages"):
        assert leak not in text, f"{leak!r} reached the browser:\n{text}"


def test_pages_by_url_need_a_key_and_the_role_and_errors_leak_nothing(
    ui_url: str, page: Page, seeded: Seeded, data_dir: Path
) -> None:
    # A fresh server, and the first request is a page's URL (Streamlit's automatic pages/
    # navigation ran such a page before anyone had signed in).
    for path in ("model", "classify", "audit", "licences", "collection", "curate", "add_pairs"):
        page.goto(f"{ui_url}/{path}")
        text = _settled(page)
        expect(page.get_by_label("API key", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        headings = page.get_by_role("heading").all_inner_texts()
        assert [h.strip() for h in headings] == ["asifdb"], (path, headings)
        assert page.get_by_test_id("stMetric").count() == 0
        assert page.get_by_test_id("stDataFrame").count() == 0
        _no_trace(text)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "e2e-3-sign-in-by-url.png", full_page=True)

    # Signing in on /audit with an app key: a refusal, none of the audit log.
    page.goto(f"{ui_url}/audit")
    _sign_in(page, seeded.keys["app"])
    refusal = "Not allowed (403): the app role may not predictions:read"
    expect(page.get_by_text(refusal)).to_be_visible()
    assert page.get_by_test_id("stDataFrame").count() == 0
    # The menu lists only the pages the role may open.
    menu = page.get_by_test_id("stSidebarNav").inner_text()
    assert "Classify & explain" in menu and "Audit" not in menu

    # A storage fault (every stored image is now a directory): a generic message, no trace.
    for blob in [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]:
        blob.unlink()
        blob.mkdir()
    page.goto(f"{ui_url}/collection")
    _sign_in(page, seeded.keys["annotator"])
    expect(page.get_by_text("Something went wrong on the server")).to_be_visible()
    _no_trace(_settled(page))
    page.screenshot(path=ARTIFACTS / "e2e-4-error.png", full_page=True)

"""Signing in with a key, pages following its role, and the Model page."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import UI, Ui
from tests.ui.seeding import K


def _page_titles(at: AppTest) -> list[str]:
    return [title.value for title in at.title]


def test_a_bad_key_is_refused_and_a_good_one_opens_its_roles_pages(ui: Ui) -> None:
    at = AppTest.from_file(str(UI / "app.py"), default_timeout=60).run()
    assert not at.exception and at.button[0].label == "Sign in"
    at.text_input[0].set_value("asif_nope_not-a-key")
    at.button[0].click().run()
    assert "invalid or revoked API key" in at.error[0].value
    at.text_input[0].set_value(ui.keys["app"])
    at.button[0].click().run()
    assert not at.exception
    assert "Signed in as **app-key** (app)" in at.sidebar.markdown[0].value
    assert _page_titles(at) == ["Classify & explain"]
    # An app key may classify and read licences, nothing else.
    for page in ("pages/add_pairs.py", "pages/collection.py", "pages/audit.py"):
        try:
            at.switch_page(page)
        except ValueError as refused:
            assert "Could not find a navigation page" in str(refused)
        else:
            raise AssertionError(f"{page} is open to an app key")


def test_model_page_shows_encoders_k_p_usable_pairs_and_version(ui: Ui) -> None:
    at = ui.app("auditor", "pages/model.py")
    assert _page_titles(at) == ["Model"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Usable pairs"] == "120"
    assert int(metrics["Model version"]) >= 3
    assert metrics["k (default)"] == str(K)
    encoders = at.dataframe[0].value
    assert set(encoders["modality"]) == {"image", "text"}
    assert (encoders["configured"] != "").all()
    assert "ok" in at.markdown[0].value


@pytest.fixture
def eval_folder(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three CIFAR-10 test classes, four images each, configured for the Model page."""
    folder = tmp_path / "labelled"
    for name in ("airplane", "cat", "ship"):
        (folder / name).mkdir(parents=True)
        for image in sorted((shared_data / "cifar10" / "test" / name).iterdir())[:4]:
            shutil.copy(image, folder / name / image.name)
    monkeypatch.setenv("EVAL_FOLDER", str(folder))
    monkeypatch.setenv("EVAL_TEMPLATES", "cifar")
    monkeypatch.setenv("EVAL_LIMIT_PER_CLASS", "3")
    return folder


def test_model_page_without_a_folder_says_how_to_configure_one(ui: Ui) -> None:
    at = ui.app("auditor", "pages/model.py")
    assert "EVAL_FOLDER" in at.info[0].value
    assert not [b for b in at.button if b.label == "Run accuracy check"]


def test_model_page_checks_accuracy_on_the_configured_folder(eval_folder: Path, ui: Ui) -> None:
    at = ui.app("auditor", "pages/model.py")
    check = next(b for b in at.button if b.label == "Run accuracy check")
    check.click().run(timeout=300)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Chance"] == "33.3%"
    top1 = float(metrics["Top-1 accuracy"].rstrip("%"))
    top5 = float(metrics["Top-5 accuracy"].rstrip("%"))
    assert 0 <= top1 <= top5 == 100  # three classes: the true one is always in the top five
    per_class = at.dataframe[-1].value
    assert set(per_class["class"]) == {"airplane", "cat", "ship"}
    assert "9 images, 3 classes" in at.caption[-1].value
    # Nothing is recorded: the check is not a prediction anyone made.
    with ui.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar() == 0

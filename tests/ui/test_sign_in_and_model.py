"""Signing in with a key, pages following its role, and the Model page."""

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from asifdb.services import keys
from tests.ui.conftest import UI, Ui, labelled
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
    # An app key may not open the audit log (tests/ui/test_gate.py: every page, every role).
    at.switch_page("views/audit.py").run()
    assert "Not allowed (403): the app role may not predictions:read" in at.error[0].value
    assert _page_titles(at) == []


def test_signing_out_shows_the_sign_in_on_the_same_page(ui: Ui) -> None:
    at = ui.app("steward", "views/licences.py")
    labelled(at.sidebar.button, "Sign out").click().run()
    assert not at.exception, at.exception
    assert _page_titles(at) == ["asifdb"] and not at.dataframe
    assert [b.label for b in at.button] == ["Sign in"]


def test_a_key_revoked_while_signed_in_is_signed_out_at_once(ui: Ui) -> None:
    at = ui.app("steward", "views/licences.py")
    with ui.platform.sessions.begin() as session:
        keys.revoke(session, name="steward-key", actor="test")
    at.run()
    assert not at.exception, at.exception
    assert "Signed out: invalid or revoked API key" in at.error[0].value
    assert _page_titles(at) == ["asifdb"] and not at.dataframe


def test_model_page_shows_encoders_k_p_usable_pairs_and_version(ui: Ui) -> None:
    at = ui.app("auditor", "views/model.py")
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
    monkeypatch.setenv("SOURCE_ROOTS", json.dumps([str(tmp_path)]))  # a server folder it may read
    monkeypatch.setenv("EVAL_TEMPLATES", "cifar")
    monkeypatch.setenv("EVAL_LIMIT_PER_CLASS", "3")
    return folder


def test_model_page_without_a_folder_says_how_to_configure_one(ui: Ui) -> None:
    at = ui.app("auditor", "views/model.py")
    assert "EVAL_FOLDER" in at.info[0].value
    assert not [b for b in at.button if b.label == "Run accuracy check"]


def test_model_page_checks_accuracy_on_the_configured_folder(eval_folder: Path, ui: Ui) -> None:
    at = ui.app("auditor", "views/model.py")
    check = next(b for b in at.button if b.label == "Run accuracy check")
    check.click().run(timeout=300)
    assert not at.exception and not at.error, [e.value for e in at.error]
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

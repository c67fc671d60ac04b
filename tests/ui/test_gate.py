"""The UI's gate: every page opened without a key shows only the sign-in, outside its role only a
refusal; a pair's image and provenance need the API's pairs:read, in the panel itself; a forged
session state unlocks nothing; an unexpected error is a generic message, never a traceback."""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import text
from streamlit import config
from streamlit.testing.v1 import AppTest

from asifdb.blobs import sha256_of_uri
from asifdb.services import keys, licences
from tests.ui.conftest import UI, Ui, labelled
from tests.ui.seeding import CIFAR, ROLES, SHIP_LICENCE

# Every page with the permission it needs (as the API's routes name them).
PAGES = {
    "classify": "classify",
    "licences": "licenses:read",
    "add_pairs": "pairs:add",
    "collection": "pairs:read",
    "audit": "predictions:read",
    "curate": "impact:read",
    "model": None,
}


def _shown(at: AppTest) -> list[str]:
    """The type of every element the main area drew (blocks left out)."""
    return [node.type for node in at.main if not hasattr(node, "children")]


def _texts(at: AppTest) -> str:
    """Everything the run wrote, as one string."""
    return "\n".join(str(getattr(node, "value", "")) for node in [*at.main, *at.sidebar])


def _only_the_sign_in(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["asifdb"]
    assert [i.label for i in at.text_input] == ["API key"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert set(_shown(at)) <= {"title", "markdown", "text_input", "button"}, _shown(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_a_page_opened_by_url_without_a_key_shows_only_the_sign_in(ui: Ui, page: str) -> None:
    # Switching before the first run is opening the page's URL in a new browser tab.
    at = AppTest.from_file(str(UI / "app.py"), default_timeout=60)
    at.switch_page(f"views/{page}.py").run()
    _only_the_sign_in(at)
    # The page's own script goes through the gate too, even when run on its own.
    alone = AppTest.from_file(str(UI / "views" / f"{page}.py"), default_timeout=60).run()
    _only_the_sign_in(alone)


def test_signing_in_on_a_pages_url_opens_that_page(ui: Ui) -> None:
    at = AppTest.from_file(str(UI / "app.py"), default_timeout=60)
    at.switch_page("views/audit.py").run()
    at.text_input[0].set_value(ui.keys["auditor"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Audit"]


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_every_page_outside_the_role_shows_a_refusal_and_none_of_its_data(
    ui: Ui, role: str
) -> None:
    refused = [p for p, needs in PAGES.items() if needs and needs not in keys.PERMISSIONS[role]]
    assert refused, f"the {role} role may open every page"
    at = ui.app(role)
    for page in refused:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
        [error] = at.error
        assert "Not allowed (403)" in error.value
        assert f"the {role} role may not {PAGES[page]}" in error.value
        assert _shown(at) == ["error"], (page, _shown(at))
    # The pages it may open do open.
    for page in set(PAGES) - set(refused):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
        assert not any("Not allowed" in e.value for e in at.error), (page, at.error)
        assert at.title, page


def _revoke_ships(ui: Ui) -> int:
    """Revoke the ships licence, as in the report; one of its pairs' id."""
    with ui.platform.sessions.begin() as session:
        licences.revoke(session, licence=SHIP_LICENCE, reason="expired", actor="test")
        return session.execute(
            text(
                "SELECT p.id FROM pairs p JOIN licenses l ON l.id = p.license_id "
                "WHERE l.name = :name ORDER BY p.id LIMIT 1"
            ),
            {"name": SHIP_LICENCE},
        ).scalar_one()


def _classify_stored_pair(at: AppTest, pair_id: int) -> AppTest:
    labelled(at.radio, "Image").set_value("A stored pair's image").run()
    at.number_input[0].set_value(pair_id)
    at.text_area(key="classify.labels").set_value("airplane, ship, frog")
    labelled(at.button, "Classify").click().run()
    assert not at.exception, at.exception
    return at


def test_an_app_key_cannot_load_a_stored_pairs_image(ui: Ui) -> None:
    pair_id = _revoke_ships(ui)
    at = _classify_stored_pair(ui.app("app", "views/classify.py"), pair_id)
    [error] = at.error
    assert "the app role may not pairs:read" in error.value
    assert not at.image and not at.metric, "no image, no prediction"
    with ui.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar() == 0
    # A key that may read pairs may classify the same stored image.
    at = _classify_stored_pair(ui.app("annotator", "views/classify.py"), pair_id)
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Prediction"] in {"airplane", "ship", "frog"}


def _classified(ui: Ui, role: str, image: Path) -> AppTest:
    at = ui.app(role, "views/classify.py")
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png"))
    at.text_area(key="classify.labels").set_value("\n".join(CIFAR))
    labelled(at.button, "Classify").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_an_app_key_sees_no_evidence_pairs_image_or_provenance(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = _classified(ui, "app", ship_image(0))
    [evidence] = at.dataframe
    assert "image" not in evidence.value.columns, "no thumbnails"
    assert not at.json, "no provenance"
    assert [i.captions for i in at.image] == [[ship_image(0).name]], "only the uploaded image"
    # A steward sees the same evidence with its images and the opened pair's provenance.
    at = _classified(ui, "steward", ship_image(0))
    [evidence] = at.dataframe
    assert evidence.value["image"].str.startswith("data:image/png;base64,").all()
    assert "provenance" in at.json[0].value
    assert len(at.image) == 2, "the upload and the opened pair's image"


def test_the_pair_panel_itself_refuses_a_key_without_pairs_read(ui: Ui) -> None:
    """Called as a page would, with an app key in the session: the check is in the panel."""

    def script() -> None:
        import panels
        import runtime

        with runtime.reported():
            panels.pair_detail(1)

    for role, refused in (("app", True), ("auditor", False)):
        at = AppTest.from_function(script, default_timeout=60)
        at.session_state["api_key"] = ui.keys[role]
        at.run()
        assert not at.exception, at.exception
        assert bool(at.error) is refused, [e.value for e in at.error]
        assert bool(at.json) is not refused
        if refused:
            assert "the app role may not pairs:read" in at.error[0].value


def test_a_forged_principal_in_the_session_unlocks_nothing(ui: Ui) -> None:
    """Only the key counts: who it belongs to is read from the database on every run."""
    at = ui.app("app", "views/licences.py")
    at.session_state["principal"] = keys.Principal(name="app-key", role="admin")
    at.run()
    assert not at.exception, at.exception
    assert labelled(at.button, "Create").disabled
    assert labelled(at.button, f"Revoke {labelled(at.selectbox, 'Licence').value}").disabled
    at.session_state["principal"] = keys.Principal(name="app-key", role="admin")
    at.switch_page("views/audit.py").run()
    assert "Not allowed (403): the app role may not predictions:read" in at.error[0].value
    assert not at.dataframe


def test_an_unexpected_error_is_a_generic_message_logged_on_the_server(
    ui: Ui, caplog: pytest.LogCaptureFixture
) -> None:
    at = ui.app("annotator", "views/collection.py")
    shown = int(at.dataframe[0].value["pair_id"][0])
    # A storage fault: that pair's image file is now a directory (reading it is an OSError).
    with ui.platform.sessions() as session:
        uri = session.execute(text("SELECT blob_uri FROM pairs WHERE id = :p"), {"p": shown})
        blob = ui.platform.blobs.path(sha256_of_uri(uri.scalar_one()))
    blob.unlink()
    blob.mkdir()
    st.cache_data.clear()  # the thumbnails drawn before the fault
    with caplog.at_level(logging.ERROR, logger="asifdb.ui"):
        at.run()
    assert config.get_option("client.showErrorDetails") == "none"
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "Something went wrong on the server; it is logged there. Try again, or ask an admin."
    ]
    written = _texts(at)
    assert "Traceback" not in written and "IsADirectoryError" not in written
    assert str(ui.data_dir) not in written
    [logged] = [r for r in caplog.records if r.name == "asifdb.ui"]
    assert logged.exc_info and logged.exc_info[0] is IsADirectoryError
    shutil.rmtree(blob)

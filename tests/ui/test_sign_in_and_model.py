"""Signing in with a key, pages following its role, and the Model page."""

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

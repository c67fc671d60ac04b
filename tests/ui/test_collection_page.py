"""Collection: browse, caption and image search, filters, and a pair's provenance."""

from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import Ui, labelled
from tests.ui.seeding import OTHER_LICENCE, SHIP_LICENCE


def _found(at: AppTest) -> list[dict]:
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at.dataframe[0].value.to_dict("records") if at.dataframe else []


def test_browse_filter_and_open_a_pair(ui: Ui) -> None:
    at = ui.app("auditor", "views/collection.py")
    assert at.caption[0].value.startswith("120 pairs match")
    assert len(_found(at)) == 50, "one page"
    labelled(at.text_input, "Caption contains").set_value("SHIP").run()
    ships = _found(at)
    assert len(ships) == 12 and {r["caption"] for r in ships} == {"a photo of a ship."}
    assert all(r["image"].startswith("data:image/png;base64,") for r in ships)
    labelled(at.text_input, "Caption contains").set_value("").run()
    labelled(at.selectbox, "Licence").set_value(OTHER_LICENCE).run()
    assert at.caption[0].value.startswith("108 pairs match")
    labelled(at.selectbox, "Status").set_value("licence revoked").run()
    assert at.caption[0].value.startswith("0 pairs match")
    labelled(at.selectbox, "Status").set_value("usable").run()
    labelled(at.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    [first, *_] = _found(at)
    labelled(at.selectbox, "Open a pair").set_value(first["pair_id"]).run()
    detail = " ".join(m.value for m in at.markdown)
    assert f"**Pair {first['pair_id']}** — a photo of a ship." in detail
    assert f"Licence **{SHIP_LICENCE}** (active)" in detail
    [provenance] = at.json
    assert "job_source" in provenance.value and "source_uri" in provenance.value


def test_image_search_ranks_pairs_by_image_similarity(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = ui.app("annotator", "views/collection.py")
    image = ship_image(0)
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png")).run()
    found = _found(at)
    similarities = [r["similarity"] for r in found]
    assert similarities == sorted(similarities, reverse=True) and 0 < similarities[0] <= 1
    assert at.caption[0].value.startswith("120 pairs match")

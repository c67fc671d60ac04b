"""The Streamlit UI's entry (`streamlit run ui/app.py`): every page is registered here, and each
runs only through `gate.open_page` (the sign-in, then its PERMISSION). The pages live in
`views/`, not `pages/`: Streamlit's automatic navigation never runs one before the sign-in."""

from types import ModuleType

import gate
import runtime
import streamlit as st
from views import add_pairs, audit, classify, collection, curate, licences, model

from asifdb.errors import AsifdbError, Unauthorized

# (module, title, icon). A page's URL is its module's name, e.g. /licences.
_PAGES = (
    (classify, "Classify & explain", ":material/image_search:"),
    (licences, "Licences", ":material/gavel:"),
    (add_pairs, "Add pairs", ":material/add_photo_alternate:"),
    (collection, "Collection", ":material/photo_library:"),
    (audit, "Audit", ":material/fact_check:"),
    (curate, "Curate", ":material/rule:"),
    (model, "Model", ":material/hub:"),
)

# A traceback names server paths and code: never send one to the browser (`False` still sends
# the stack trace; "none" sends only that an error happened).
st.set_option("client.showErrorDetails", "none")
st.set_page_config(page_title="asifdb", page_icon=":material/hub:", layout="wide")


def _page(module: ModuleType, title: str, icon: str) -> st.Page:
    """Routed for everyone (its script goes through the gate, so a URL outside the role shows a
    refusal rather than another page), listed in the menu only for the roles that may open it."""
    listed = who is not None and (module.PERMISSION is None or gate.may(module.PERMISSION))
    return st.Page(
        f"views/{module.__name__.rsplit('.', 1)[-1]}.py",
        title=title,
        icon=icon,
        visibility="visible" if listed else "hidden",
    )


def _home() -> None:
    """The root URL: the sign-in, or the first page the signed-in role may use."""
    gate.open_page(
        lambda: st.switch_page(next(p for p in pages if p.visibility == "visible")), None
    )


who = None
with runtime.reported():
    try:
        who = gate.signed_in()
    except Unauthorized as exc:
        st.error(f"Signed out: {exc}")
    except AsifdbError as exc:  # the platform is not reachable or not ready: say how to fix it
        st.error(str(exc))
        st.stop()

if who is not None:
    with st.sidebar:
        st.markdown(f"Signed in as **{who.name}** ({who.role})")
        if st.button("Sign out", icon=":material/logout:"):
            gate.sign_out()
            st.rerun()

pages = [_page(*page) for page in _PAGES]
home = st.Page(_home, title="asifdb", url_path="home", default=True, visibility="hidden")
st.navigation([home, *pages]).run()

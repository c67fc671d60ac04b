"""The Streamlit UI's entry (`streamlit run ui/app.py`): sign in with an API key, then the
pages the key's role may use. Pages are thin: they call asifdb.services and render."""

import runtime
import streamlit as st

from asifdb.errors import AsifdbError, Unauthorized

# (script, title, icon, permission the page needs; None: every role)
_PAGES = (
    ("pages/classify.py", "Classify & explain", ":material/image_search:", "classify"),
    ("pages/licences.py", "Licences", ":material/gavel:", "licenses:read"),
    ("pages/add_pairs.py", "Add pairs", ":material/add_photo_alternate:", "pairs:add"),
    ("pages/collection.py", "Collection", ":material/photo_library:", "pairs:read"),
    ("pages/audit.py", "Audit", ":material/fact_check:", "predictions:read"),
    ("pages/curate.py", "Curate", ":material/rule:", "impact:read"),
    ("pages/model.py", "Model", ":material/hub:", None),
)

st.set_page_config(page_title="asifdb", page_icon=":material/hub:", layout="wide")


def _sign_in_form() -> None:
    st.title("asifdb")
    st.write("A CLIP-like model built from image–caption pairs, with no training (ASIF).")
    with st.form("sign_in"):
        key = st.text_input(
            "API key",
            type="password",
            help="An admin makes one: `asifdb keys create --name you --role steward`",
        )
        if st.form_submit_button("Sign in", type="primary"):
            with runtime.reported():
                runtime.sign_in(key)
                st.rerun()


try:
    who = runtime.current()
except Unauthorized as exc:
    st.error(f"Signed out: {exc}")
    who = None
except AsifdbError as exc:  # the platform is not reachable or not ready: say how to fix it
    st.error(str(exc))
    st.stop()

if who is None:
    _sign_in_form()
    st.stop()

with st.sidebar:
    st.markdown(f"Signed in as **{who.name}** ({who.role})")
    if st.button("Sign out", icon=":material/logout:"):
        runtime.sign_out()
        st.rerun()

pages = [
    st.Page(script, title=title, icon=icon)
    for script, title, icon, permission in _PAGES
    if permission is None or runtime.may(permission)
]
st.navigation(pages).run()

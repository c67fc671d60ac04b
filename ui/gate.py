"""The one gate every page and every action of the UI goes through: the browser session's key,
checked against the database again each time, and the permission the API's route needs."""

from collections.abc import Callable

import runtime
import streamlit as st

from asifdb.errors import Forbidden, Unauthorized
from asifdb.services import keys
from asifdb.services.keys import Principal

_KEY = "api_key"
# Who this run found signed in: only to hide or disable what they may not do (`allow` decides).
_SHOWN = "principal"


def sign_in(key: str) -> Principal:
    """Check the key and keep it for this browser session; raises Unauthorized if it is bad."""
    with runtime.platform().sessions() as session:
        who = keys.authenticate(session, key=key.strip())
    st.session_state[_KEY] = key.strip()
    return who


def sign_out() -> None:
    st.session_state.pop(_KEY, None)
    st.session_state.pop(_SHOWN, None)


def signed_in() -> Principal | None:
    """The principal of the kept key, checked again now (a revoked key is signed out at once);
    None without one."""
    key = st.session_state.get(_KEY)
    if key is None:
        st.session_state.pop(_SHOWN, None)
        return None
    try:
        with runtime.platform().sessions() as session:
            who = keys.authenticate(session, key=key)
    except Unauthorized:
        sign_out()
        raise
    st.session_state[_SHOWN] = who
    return who


def allow(permission: str | None) -> Principal:
    """Who may do this now: call right before the service. Raises Unauthorized without a valid
    key and Forbidden when the key's role lacks `permission` (the API's permission names; None:
    any valid key)."""
    who = signed_in()
    if who is None:
        raise Unauthorized("sign in with an API key first")
    if permission is not None:
        who.require(permission)
    return who


def may(permission: str) -> bool:
    """Whether to offer what needs `permission` (hide or disable it); `allow` decides."""
    shown: Principal | None = st.session_state.get(_SHOWN)
    return shown is not None and permission in keys.PERMISSIONS[shown.role]


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
                sign_in(key)
                st.rerun()


def open_page(render: Callable[[], None], permission: str | None) -> None:
    """Run a page: the sign-in form without a key, a refusal outside the page's role, else the
    page itself, with its errors shown as messages and never as a traceback."""
    with runtime.reported():
        try:
            allow(permission)
        except Unauthorized:
            _sign_in_form()
            return
        except Forbidden as exc:
            st.error(f"Not allowed (403): {exc}", icon=":material/block:")
            return
        render()

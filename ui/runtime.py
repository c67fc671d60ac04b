"""The UI process's platform (one per Streamlit server) and each browser session's signed-in key.

`app.py` signs people in; pages call `platform()`, `principal()`, `may()` and `reported()`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from asifdb.context import Platform
from asifdb.errors import AsifdbError, Unauthorized
from asifdb.services import keys
from asifdb.services.keys import Principal
from asifdb.settings import get_settings

_KEY = "api_key"
_PRINCIPAL = "principal"


@st.cache_resource(show_spinner="Connecting to the database…")
def platform() -> Platform:
    """Shared by every browser session of this server: one pool, one live model, one encoder."""
    return Platform(get_settings())


def sign_in(key: str) -> Principal:
    """Check the key and keep it for this browser session; raises Unauthorized if it is bad."""
    with platform().sessions() as session:
        who = keys.authenticate(session, key=key.strip())
    st.session_state[_KEY] = key.strip()
    return who


def sign_out() -> None:
    st.session_state.pop(_KEY, None)
    st.session_state.pop(_PRINCIPAL, None)


def current() -> Principal | None:
    """The principal of the kept key, checked again on every run: a revoked key is out at once."""
    key = st.session_state.get(_KEY)
    if key is None:
        return None
    try:
        with platform().sessions() as session:
            who = keys.authenticate(session, key=key)
    except Unauthorized:
        sign_out()
        raise
    st.session_state[_PRINCIPAL] = who
    return who


def principal() -> Principal:
    """Who is signed in (pages run only after `app.py` has checked it)."""
    return st.session_state[_PRINCIPAL]


def may(permission: str) -> bool:
    """Whether the signed-in role carries `permission` (to hide or disable what it may not do)."""
    return permission in keys.PERMISSIONS[principal().role]


@contextmanager
def reported() -> Iterator[None]:
    """Show a domain error as the message it is (it names the fix) instead of a traceback."""
    try:
        yield
    except AsifdbError as exc:
        st.error(str(exc))

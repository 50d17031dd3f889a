"""Who is asking: the signed-in user under --auth, else the single local user."""

from __future__ import annotations

import gradio as gr

from app.core import LOCAL_USER, App


class AccessDenied(gr.Error):
    pass


def user_id_for(app: App, request: gr.Request | None, auth: bool) -> int:
    if not auth:
        return app.repo.ensure_user(LOCAL_USER)
    username = getattr(request, "username", None) if request is not None else None
    if not username:
        raise AccessDenied("Sign in first.")
    user_id = app.repo.user_id(username)
    if user_id is None:
        raise AccessDenied("This account no longer exists.")
    return user_id

"""Who is asking: the signed-in user under --auth (or the owner of the request's API key), else the
single local user."""

from __future__ import annotations

import gradio as gr

from app.api_keys import bearer_key, user_for_key
from app.core import LOCAL_USER, App


class AccessDenied(gr.Error):
    pass


def user_id_for(app: App, request: gr.Request | None, auth: bool) -> int:
    if not auth:
        return app.repo.ensure_user(LOCAL_USER)
    username = getattr(request, "username", None) if request is not None else None
    if not username:
        # MCP clients and scripts sign in with a key: `Authorization: Bearer ldk-…`.
        headers = getattr(request, "headers", None) or {}
        owner = user_for_key(app.repo, bearer_key(headers.get("authorization", "")))
        if owner is None:
            raise AccessDenied("Sign in first, or send an API key (llamadesk users key NAME).")
        return owner
    user_id = app.repo.user_id(username)
    if user_id is None:
        raise AccessDenied("This account no longer exists.")
    return user_id

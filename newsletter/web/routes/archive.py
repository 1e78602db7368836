"""The archive: published briefs, and each one's web version ("view in browser")."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from newsletter.briefs import brief_topics, published_briefs
from newsletter.db import session_scope
from newsletter.render import render_web
from newsletter.web.deps import Web

router = APIRouter()


@router.get("/archive")
def archive(web: Web) -> HTMLResponse:
    with session_scope(web.engine) as session:
        briefs = published_briefs(session=session)
    return web.page("archive.html", briefs=briefs)


@router.get("/archive/{slug}")
def archived(slug: str, web: Web) -> HTMLResponse:
    with session_scope(web.engine) as session:
        found = next((b for b in published_briefs(session=session) if b.slug == slug), None)
        if found is None:  # drafts and unsent briefs are not public
            return web.page("not_found.html", 404)
        html = render_web(found, brief_topics(found, session=session), web.settings)
    return HTMLResponse(html)

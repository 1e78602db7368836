"""The list as a file: import a CSV (a dry-run report by line first, then apply) and
export it (all of it, or the inactive readers: the sunset list).

Stateless between the two import steps: the report page carries the uploaded file back,
base64-encoded, in its apply form, so any web process can apply it, and the apply step
checks the file again from scratch (the list may have changed in between). Both steps run
`subscribers/importer.py`, exactly as `newsletter subscribers import` does.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.readers.importing import ListImport, import_readers
from newsletter.readers.search import reader_conditions
from newsletter.staff import audit
from newsletter.web.console.deps import ROUTER_GUARD, ConsoleDep, ReaderQueryDep, StaffUser
from newsletter.web.console.sessions import SignedIn
from newsletter.web.deps import ClientIp
from newsletter.web.limits import CONSOLE_CSV_MAX_BYTES
from subscribers.exporter import export_subscribers
from subscribers.models import utcnow

router = APIRouter(prefix="/admin/subscribers", dependencies=ROUTER_GUARD)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
LIMIT_WORDS = (
    f"at most {CONSOLE_CSV_MAX_BYTES // 1024} KB (about 5,000 readers) in the console; "
    "import a bigger list with `newsletter subscribers import`"
)


def _form(
    request: Request, console: ConsoleDep, staff: SignedIn, status: int = 200, **extra: object
) -> HTMLResponse:
    extra.setdefault("report", None)
    extra.setdefault("confirmations", [])
    extra.setdefault("error", "")
    return console.page(
        request, "subscriber_import.html", staff, status, limit=LIMIT_WORDS, **extra
    )


def _run(
    console: ConsoleDep, data: bytes, filename: str, *, dry_run: bool, pending: bool
) -> ListImport:
    """The importer on the uploaded bytes, saved under the uploaded file's (cleaned) name
    so the report's messages name the file staff chose."""
    name = _SAFE_NAME.sub("_", Path(filename).name)[:100] or "upload.csv"
    with tempfile.TemporaryDirectory(prefix="newsletter-import-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            with session_scope(console.engine) as session:
                outcome = import_readers(
                    path,
                    session=session,
                    default_timezone=console.settings.NEWSLETTER_TIMEZONE,
                    dry_run=dry_run,
                    require_confirmation=pending,
                )
                outcome.report.file = name
                return outcome
        except NewsletterError as exc:
            # Named as staff chose it, not by the server's temporary folder.
            raise NewsletterError(str(exc).replace(str(path), name), hint=exc.hint) from exc


@router.get("/import")
def import_page(request: Request, console: ConsoleDep, staff: StaffUser) -> HTMLResponse:
    return _form(request, console, staff)


@router.post("/import")
def dry_run(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    file: Annotated[UploadFile | None, File()] = None,
    require_confirmation: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    """Step one: what the file would do, line by line; nothing changes."""
    if file is None or not file.filename:
        return _form(request, console, staff, 400, error="Choose a CSV file to upload.")
    data = file.file.read(CONSOLE_CSV_MAX_BYTES + 1)
    if len(data) > CONSOLE_CSV_MAX_BYTES:
        return _form(
            request, console, staff, 413, error=f"{file.filename}: too big: {LIMIT_WORDS}."
        )
    pending = require_confirmation == "yes"
    try:
        outcome = _run(console, data, file.filename, dry_run=True, pending=pending)
    except NewsletterError as exc:
        return _form(request, console, staff, 400, error=str(exc))
    return _form(
        request,
        console,
        staff,
        report=outcome.report,
        confirmations=outcome.confirmation_lines(),
        data=base64.b64encode(data).decode(),
        filename=outcome.report.file,
        pending=pending,
    )


@router.post("/import/apply")
def apply(
    request: Request,
    console: ConsoleDep,
    staff: StaffUser,
    ip: ClientIp,
    data: Annotated[str, Form(max_length=CONSOLE_CSV_MAX_BYTES * 4 // 3 + 4)] = "",
    filename: Annotated[str, Form(max_length=100)] = "",
    require_confirmation: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    """Step two: the same file, for real; good rows go in, bad ones are reported."""
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        content = b""
    if not content:
        return _form(request, console, staff, 400, error="Upload the file again: nothing came.")
    pending = require_confirmation == "yes"
    try:
        outcome = _run(console, content, filename, dry_run=False, pending=pending)
        report = outcome.report
        with session_scope(console.engine) as session:
            detail = outcome.audit_detail()
            audit.record(session, staff.email, "subscriber.import", report.file, detail, ip)
    except NewsletterError as exc:
        return _form(request, console, staff, 400, error=str(exc))
    return _form(
        request,
        console,
        staff,
        report=report,
        confirmations=outcome.confirmation_lines(),
        applied=True,
        pending=pending,
    )


@router.get("/export.csv")
def export(console: ConsoleDep, staff: StaffUser, ip: ClientIp, query: ReaderQueryDep) -> Response:
    """The list (but the forgotten) in the import's format, narrowed by the list page's
    filters; `inactive=90` alone is the sunset list: active readers with no open or click
    in 90 days."""
    query = replace(query, after="")  # the whole list, not the page on the screen
    stream = io.StringIO()
    with session_scope(console.engine) as session:
        try:
            where = reader_conditions(query, session=session, now=utcnow())
        except NewsletterError as exc:
            return Response(f"{exc}\n", 400, media_type="text/plain")
        # A download is opened in a spreadsheet: Excel needs the byte-order mark to read
        # the names as UTF-8 rather than as mojibake.
        count = export_subscribers(stream, session=session, where=where, bom=True)
        # The audit log names readers by id only: a search for an address is "a search".
        narrowed = "; ".join(
            "a search" if name == "q" else f"{name} {value}"
            for name, value in query.filters().items()
        )
        audit.record(
            session,
            staff.email,
            "subscriber.export",
            narrowed or "every reader",
            f"{count} rows",
            ip,
        )
    days = query.inactive_days
    name = f"subscribers-{'inactive-' if days else ''}{utcnow():%Y-%m-%d}.csv"
    return Response(
        stream.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

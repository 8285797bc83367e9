"""The public verify page a certificate's QR code leads to: is this paper really ours?

Shows only what is printed on the paper anyway — type, issue date, 発行番号, municipality — and
whether the scanned hash matches the one recorded when it was issued. Never a name or address.
"""

from __future__ import annotations

from sqlmodel import select
from starlette.requests import Request
from starlette.responses import Response

from app.models import CertificateIssue, IssuedCopy, Municipality
from app.printing.verify import hash_prefix_matches, issue_number_from_slug


def verify(request: Request) -> Response:
    slug = request.path_params["slug"]
    hash_prefix = request.query_params.get("h", "")[:32]
    context: dict[str, object] = {"found": False, "matches": False, "issue_number": ""}
    try:
        issue_number = issue_number_from_slug(slug)
    except ValueError:
        issue_number = ""
    if issue_number:
        with request.app.state.db.session() as session:
            copy = session.exec(select(IssuedCopy).where(IssuedCopy.issue_number == issue_number)).first()
            if copy is not None:
                issue = session.get(CertificateIssue, copy.issue_id)
                municipality = session.exec(select(Municipality)).first()
                context.update(
                    found=True,
                    matches=hash_prefix_matches(copy.content_hash, hash_prefix),
                    issue_number=copy.issue_number,
                    certificate_type=copy.certificate_type,
                    issued_on=copy.issued_on,
                    municipality=municipality.name if municipality else "",
                    reprint=bool(issue and issue.reprint_of),
                )
    response: Response = request.app.state.templates.TemplateResponse(
        request, "verify.html", context, status_code=200 if context["found"] else 404
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response

"""FdR, the REST reporting flows (§2.5): PSP side under /sim/fdr-psp/service/v1, organisation side under
/sim/fdr-org/service/v1, shapes per fdr_psp.json / fdr_organization.json.

A flow is a draft (CREATED, INSERTED once it has payments) until ``publish``; publishing the same name
again creates the next revision, and the newest published revision is the valid one. The functions of
the service layer (create, add_payments, delete_payments, publish...) are also used by the simulated PSPs.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qs

from sqlalchemy import delete, func, insert, select, update

from simulators import legacy_store as t
from simulators.store import utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

PSP_PREFIX = "/fdr-psp/service/v1"
ORG_PREFIX = "/fdr-org/service/v1"
PAY_STATUS = ("EXECUTED", "REVOKED", "STAND_IN", "STAND_IN_NO_RPT", "NO_RPT")
SENDER_TYPES = ("LEGAL_PERSON", "ABI_CODE", "BIC_CODE")
_FDR_NAME = re.compile(r"[a-zA-Z0-9\-_]{1,35}")
_CENT = Decimal("0.01")
STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class FdrError(Exception):
    """An ErrorResponse: HTTP status, appErrorCode and the messages of ``errors``."""

    def __init__(self, status: int, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message}
        if self.path:
            error["path"] = self.path
        body: dict[str, Any] = {"httpStatusCode": self.status,
                                "httpStatusDescription": STATUS_TEXT.get(self.status, ""),
                                "appErrorCode": self.code, "errors": [error]}
        if self.status >= 500:
            body = {"errorId": str(uuid.uuid4()), **body}
        return body


def _bad(message: str, path: str | None = None, code: str = "FDR-0702") -> FdrError:
    return FdrError(400, code, message, path)


def instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"{path} must be an ISO-8601 date-time", path, "FDR-0700")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{path} is not a valid date-time", path, "FDR-0700") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _amount(value: Any, path: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _bad(f"{path} is not a number", path, "FDR-0700") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(_CENT):
        raise _bad(f"{path} must have at most two decimals", path, "FDR-0700")
    return amount.quantize(_CENT)


def _text(body: dict, key: str, path: str, low: int = 1, high: int = 35, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise _bad(f"{path} must be a string of {low}..{high} characters", path, "FDR-0700")
    return value


def _money(value: Decimal) -> float:
    # JSON numbers: Decimal → float keeps two decimals exactly for amounts of this size.
    return float(value)


# --- service layer -------------------------------------------------------------------------------

def _draft(conn: Any, psp_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(t.fdr).where(t.fdr.c.psp_id == psp_id, t.fdr.c.fdr == name,
                                           t.fdr.c.status.in_(["CREATED", "INSERTED"]))).mappings().first()
    return dict(row) if row else None


def _need_draft(conn: Any, psp_id: str, name: str) -> dict[str, Any]:
    row = _draft(conn, psp_id, name)
    if row is None:
        raise FdrError(404, "FDR-0701", f"Reporting Fdr [{name}] not found")
    return row


def validate_create(psp_id: str, name: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object", None, "FDR-0700")
    if not _FDR_NAME.fullmatch(name):
        raise _bad("fdr does not match [a-zA-Z0-9\\-_]{1,35}", "fdr", "FDR-0700")
    if body.get("fdr") != name:
        raise _bad(f"Reporting Fdr [{name}] has a different fdr in the body", "fdr", "FDR-0703")
    _parse_instant(body.get("fdrDate"), "fdrDate")
    sender = body.get("sender")
    receiver = body.get("receiver")
    if not isinstance(sender, dict) or not isinstance(receiver, dict):
        raise _bad("sender and receiver are required", "sender", "FDR-0700")
    if sender.get("type") not in SENDER_TYPES:
        raise _bad(f"sender.type must be one of {', '.join(SENDER_TYPES)}", "sender.type", "FDR-0700")
    for key in ("id", "pspId", "pspBrokerId", "channelId"):
        _text(sender, key, f"sender.{key}")
    _text(sender, "pspName", "sender.pspName", 3, 70)
    if sender["pspId"] != psp_id:
        raise _bad(f"sender.pspId [{sender['pspId']}] differs from the path pspId [{psp_id}]", "sender.pspId",
                   "FDR-0703")
    for key in ("id", "organizationId"):
        _text(receiver, key, f"receiver.{key}")
    _text(receiver, "organizationName", "receiver.organizationName", 1, 140)
    _text(body, "regulation", "regulation")
    try:
        date.fromisoformat(str(body.get("regulationDate")))
    except ValueError:
        raise _bad("regulationDate must be a date (yyyy-MM-dd)", "regulationDate", "FDR-0700") from None
    _text(body, "bicCodePouringBank", "bicCodePouringBank", required=False)
    tot = body.get("totPayments")
    if not isinstance(tot, int) or isinstance(tot, bool) or tot < 1:
        raise _bad("totPayments must be an integer >= 1", "totPayments", "FDR-0700")
    _amount(body.get("sumPayments"), "sumPayments")
    clean = dict(body)
    clean["sender"] = {k: v for k, v in sender.items() if k != "password"}  # never kept, never shown
    return clean


def create(sim: "Simulator", psp_id: str, name: str, body: Any) -> None:
    clean = validate_create(psp_id, name, body)
    now = utcnow()
    with sim.store.begin() as conn:
        if _draft(conn, psp_id, name) is not None:
            raise _bad(f"Reporting Fdr [{name}] already exists in status [CREATED]", None, "FDR-0702")
        last = conn.execute(select(func.max(t.fdr.c.revision)).where(t.fdr.c.psp_id == psp_id,
                                                                     t.fdr.c.fdr == name)).scalar()
        conn.execute(insert(t.fdr).values(
            psp_id=psp_id, fdr=name, revision=(last or 0) + 1, organization_id=clean["receiver"]["organizationId"],
            status="CREATED", body=clean, created=now, updated=now, published=None))


def _payment(item: Any, position: int) -> dict[str, Any]:
    path = f"payments[{position}]"
    if not isinstance(item, dict):
        raise _bad(f"{path} must be an object", path, "FDR-0700")
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 1:
        raise _bad(f"{path}.index must be an integer >= 1", f"{path}.index", "FDR-0700")
    id_transfer = item.get("idTransfer")
    if not isinstance(id_transfer, int) or isinstance(id_transfer, bool) or not 1 <= id_transfer <= 5:
        raise _bad(f"{path}.idTransfer must be an integer 1..5", f"{path}.idTransfer", "FDR-0700")
    if item.get("payStatus") not in PAY_STATUS:
        raise _bad(f"{path}.payStatus must be one of {', '.join(PAY_STATUS)}", f"{path}.payStatus", "FDR-0700")
    pay = _amount(item.get("pay"), f"{path}.pay")
    pay_date = _parse_instant(item.get("payDate"), f"{path}.payDate")
    return {"index": index, "iuv": _text(item, "iuv", f"{path}.iuv"), "iur": _text(item, "iur", f"{path}.iur"),
            "id_transfer": id_transfer, "pay": pay, "pay_status": item["payStatus"], "pay_date": instant(pay_date)}


def add_payments(sim: "Simulator", psp_id: str, name: str, body: Any) -> None:
    items = body.get("payments") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise _bad("payments must hold 1..1000 items", "payments", "FDR-0700")
    payments = [_payment(item, position) for position, item in enumerate(items)]
    indexes = [p["index"] for p in payments]
    if len(set(indexes)) != len(indexes):
        raise _bad("payments contains the same index twice", "payments", "FDR-0704")
    with sim.store.begin() as conn:
        draft = _need_draft(conn, psp_id, name)
        taken = set(conn.execute(select(t.fdr_payment.c.index).where(
            t.fdr_payment.c.fdr_pk == draft["id"], t.fdr_payment.c.index.in_(indexes))).scalars())
        if taken:
            raise _bad(f"Reporting Fdr [{name}] already has payments with index {sorted(taken)}", "payments",
                       "FDR-0704")
        conn.execute(insert(t.fdr_payment), [{"fdr_pk": draft["id"], **p} for p in payments])
        conn.execute(update(t.fdr).where(t.fdr.c.id == draft["id"]).values(status="INSERTED", updated=utcnow()))


def delete_payments(sim: "Simulator", psp_id: str, name: str, body: Any) -> None:
    indexes = body.get("indexList") if isinstance(body, dict) else None
    if not isinstance(indexes, list) or not 1 <= len(indexes) <= 1000 or \
            not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
        raise _bad("indexList must hold 1..1000 integers", "indexList", "FDR-0700")
    with sim.store.begin() as conn:
        draft = _need_draft(conn, psp_id, name)
        found = set(conn.execute(select(t.fdr_payment.c.index).where(
            t.fdr_payment.c.fdr_pk == draft["id"], t.fdr_payment.c.index.in_(indexes))).scalars())
        missing = sorted(set(indexes) - found)
        if missing:
            raise _bad(f"Reporting Fdr [{name}] has no payments with index {missing}", "indexList", "FDR-0705")
        conn.execute(delete(t.fdr_payment).where(t.fdr_payment.c.fdr_pk == draft["id"],
                                                 t.fdr_payment.c.index.in_(indexes)))
        left = conn.execute(select(func.count()).select_from(t.fdr_payment)
                            .where(t.fdr_payment.c.fdr_pk == draft["id"])).scalar()
        conn.execute(update(t.fdr).where(t.fdr.c.id == draft["id"])
                     .values(status="INSERTED" if left else "CREATED", updated=utcnow()))


def _computed(conn: Any, pk: int) -> tuple[int, Decimal]:
    # Summed here, not in SQL: the column type converts each amount exactly, an aggregate would not.
    pays = conn.execute(select(t.fdr_payment.c.pay).where(t.fdr_payment.c.fdr_pk == pk)).scalars().all()
    return len(pays), sum(pays, Decimal("0.00")).quantize(_CENT)


def publish(sim: "Simulator", psp_id: str, name: str) -> int:
    """Publish the draft; returns its revision (a new publication of the same name is the next one)."""
    with sim.store.begin() as conn:
        draft = _need_draft(conn, psp_id, name)
        count, total = _computed(conn, draft["id"])
        declared_count = draft["body"]["totPayments"]
        declared_sum = Decimal(str(draft["body"]["sumPayments"])).quantize(_CENT)
        if count != declared_count:
            raise _bad(f"Reporting Fdr [{name}] has {count} payments, totPayments says {declared_count}",
                       "totPayments", "FDR-0706")
        if total != declared_sum:
            raise _bad(f"Reporting Fdr [{name}] sums {total}, sumPayments says {declared_sum}", "sumPayments",
                       "FDR-0707")
        now = utcnow()
        conn.execute(update(t.fdr).where(t.fdr.c.id == draft["id"])
                     .values(status="PUBLISHED", published=now, updated=now))
        return draft["revision"]


def delete_draft(sim: "Simulator", psp_id: str, name: str) -> None:
    with sim.store.begin() as conn:
        draft = _need_draft(conn, psp_id, name)
        conn.execute(delete(t.fdr_payment).where(t.fdr_payment.c.fdr_pk == draft["id"]))
        conn.execute(delete(t.fdr).where(t.fdr.c.id == draft["id"]))


# --- organisation side ---------------------------------------------------------------------------

def _start_of_previous_month(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.replace(year=first.year - 1, month=12) if first.month == 1 else first.replace(month=first.month - 1)


def _page_args(query: dict[str, list[str]], default_size: int) -> tuple[int, int]:
    try:
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("size", [str(default_size)])[0])
    except ValueError:
        raise _bad("page and size must be integers", "page", "FDR-0700") from None
    if page < 1 or not 1 <= size <= 1000:
        raise _bad("page must be >= 1 and size 1..1000", "size", "FDR-0700")
    return page, size


def _paginated(items: list[Any], page: int, size: int) -> dict[str, Any]:
    chunk = items[(page - 1) * size: page * size]
    return {"metadata": {"pageSize": size, "pageNumber": page, "totPage": max(1, math.ceil(len(items) / size))},
            "count": len(chunk), "data": chunk}


def list_published(sim: "Simulator", organization_id: str, query: dict[str, list[str]]) -> dict[str, Any]:
    page, size = _page_args(query, 1000)
    default_since = _start_of_previous_month(utcnow())
    published_gt = _parse_instant(query["publishedGt"][0], "publishedGt") if "publishedGt" in query else default_since
    flow_date = _parse_instant(query["flowDate"][0], "flowDate") if "flowDate" in query else default_since
    psp_id = query.get("pspId", [None])[0]
    stmt = select(t.fdr).where(t.fdr.c.organization_id == organization_id, t.fdr.c.status == "PUBLISHED",
                               t.fdr.c.published > published_gt)
    if psp_id:
        stmt = stmt.where(t.fdr.c.psp_id == psp_id)
    with sim.store.begin() as conn:
        rows = conn.execute(stmt.order_by(t.fdr.c.published, t.fdr.c.id)).mappings().all()
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:  # only the valid (newest) revision of each flow
        key = (row["psp_id"], row["fdr"])
        if key not in newest or row["revision"] > newest[key]["revision"]:
            newest[key] = dict(row)
    data = []
    for row in sorted(newest.values(), key=lambda r: (r["published"], r["id"])):
        fdr_date = _parse_instant(row["body"]["fdrDate"], "fdrDate")
        if fdr_date < flow_date:
            continue
        data.append({"fdr": row["fdr"], "pspId": row["psp_id"], "revision": row["revision"],
                     "published": instant(row["published"]), "flowDate": instant(fdr_date)})
    return _paginated(data, page, size)


def _published(conn: Any, organization_id: str, name: str, revision: str, psp_id: str) -> dict[str, Any]:
    try:
        number = int(revision)
    except ValueError:
        raise _bad("revision must be an integer", "revision", "FDR-0700") from None
    row = conn.execute(select(t.fdr).where(t.fdr.c.organization_id == organization_id, t.fdr.c.fdr == name,
                                           t.fdr.c.revision == number, t.fdr.c.psp_id == psp_id,
                                           t.fdr.c.status == "PUBLISHED")).mappings().first()
    if row is None:
        raise FdrError(404, "FDR-0701", f"Reporting Fdr [{name}] not found")
    return dict(row)


def single_flow(sim: "Simulator", organization_id: str, name: str, revision: str, psp_id: str) -> dict[str, Any]:
    with sim.store.begin() as conn:
        row = _published(conn, organization_id, name, revision, psp_id)
        count, total = _computed(conn, row["id"])
    body = row["body"]
    out: dict[str, Any] = {
        "status": row["status"], "revision": row["revision"], "created": instant(row["created"]),
        "updated": instant(row["updated"]), "fdr": row["fdr"], "fdrDate": body["fdrDate"],
        "regulation": body["regulation"], "regulationDate": body["regulationDate"],
        "sender": body["sender"], "receiver": body["receiver"], "published": instant(row["published"]),
        "computedTotPayments": count, "computedSumPayments": _money(total),
        "totPayments": body["totPayments"], "sumPayments": _money(Decimal(str(body["sumPayments"])))}
    if body.get("bicCodePouringBank"):
        out["bicCodePouringBank"] = body["bicCodePouringBank"]
    return out


def flow_payments(sim: "Simulator", organization_id: str, name: str, revision: str, psp_id: str,
                  query: dict[str, list[str]]) -> dict[str, Any]:
    page, size = _page_args(query, 1000)
    with sim.store.begin() as conn:
        row = _published(conn, organization_id, name, revision, psp_id)
        payments = conn.execute(select(t.fdr_payment).where(t.fdr_payment.c.fdr_pk == row["id"])
                                .order_by(t.fdr_payment.c.index)).mappings().all()
    data = [{"index": p["index"], "iuv": p["iuv"], "iur": p["iur"], "idTransfer": p["id_transfer"],
             "pay": _money(p["pay"]), "payStatus": p["pay_status"], "payDate": p["pay_date"]} for p in payments]
    return _paginated(data, page, size)


# --- HTTP ----------------------------------------------------------------------------------------

def _json(start_response: Callable, status: int, payload: Any) -> list[bytes]:
    data = json.dumps(payload).encode()
    start_response(f"{status} {STATUS_TEXT.get(status, 'OK' if status < 300 else '')}".strip(),
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _body(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 20 * 1024 * 1024:
        raise _bad("request body too large", None, "FDR-0700")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise _bad("request body is not valid JSON", None, "FDR-0700") from None


def _segments(environ: dict[str, Any], prefix: str) -> list[str]:
    path = environ.get("PATH_INFO", "")
    position = path.find(prefix)
    rest = path[position + len(prefix):] if position >= 0 else path
    return [part for part in rest.split("/") if part]


def psp_app(sim: "Simulator") -> Callable:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = _segments(environ, PSP_PREFIX)
        try:
            if len(parts) < 4 or parts[0] != "psps" or parts[2] != "fdrs":
                raise FdrError(404, "FDR-0404", "resource not found")
            psp_id, name, tail = parts[1], parts[3], parts[4:]
            if tail == [] and method == "POST":
                create(sim, psp_id, name, _body(environ))
                return _json(start_response, 201, {"message": "Success"})
            if tail == [] and method == "DELETE":
                delete_draft(sim, psp_id, name)
            elif tail == ["payments", "add"] and method == "PUT":
                add_payments(sim, psp_id, name, _body(environ))
            elif tail == ["payments", "del"] and method == "PUT":
                delete_payments(sim, psp_id, name, _body(environ))
            elif tail == ["publish"] and method == "POST":
                publish(sim, psp_id, name)
            else:
                raise FdrError(404, "FDR-0404", "resource not found")
            return _json(start_response, 200, {"message": "Success"})
        except FdrError as error:
            return _json(start_response, error.status, error.body())
        except Exception:  # noqa: BLE001 - the contract's 500 body, never a stack trace
            import logging

            logging.getLogger(__name__).exception("FdR PSP API failed")
            return _json(start_response, 500, FdrError(500, "FDR-0500", "An unexpected error has occurred. "
                                                                       "Please contact support.").body())
    return app


def org_app(sim: "Simulator") -> Callable:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        parts = _segments(environ, ORG_PREFIX)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            if environ.get("REQUEST_METHOD", "GET") != "GET" or len(parts) < 3 or parts[0] != "organizations" \
                    or parts[2] != "fdrs":
                raise FdrError(404, "FDR-0404", "resource not found")
            organization_id, tail = parts[1], parts[3:]
            if not tail:
                return _json(start_response, 200, list_published(sim, organization_id, query))
            if len(tail) == 5 and tail[1] == "revisions" and tail[3] == "psps":
                return _json(start_response, 200, single_flow(sim, organization_id, tail[0], tail[2], tail[4]))
            if len(tail) == 6 and tail[1] == "revisions" and tail[3] == "psps" and tail[5] == "payments":
                return _json(start_response, 200,
                             flow_payments(sim, organization_id, tail[0], tail[2], tail[4], query))
            raise FdrError(404, "FDR-0404", "resource not found")
        except FdrError as error:
            return _json(start_response, error.status, error.body())
        except Exception:  # noqa: BLE001
            import logging

            logging.getLogger(__name__).exception("FdR organisation API failed")
            return _json(start_response, 500, FdrError(500, "FDR-0500", "An unexpected error has occurred. "
                                                                       "Please contact support.").body())
    return app


def routes(sim: "Simulator") -> dict[str, Callable]:
    """Route provider of simulators.app."""
    t.create_tables(sim.store.engine)
    return {PSP_PREFIX: psp_app(sim), ORG_PREFIX: org_app(sim)}

"""What the centre remembers between calls (moto's models.py): people, visits, settlements, records, files.

Everything is bounded: each collection forgets its oldest entries beyond its limit, so a long load test
cannot grow the simulator without end. Indexes may name forgotten entries; readers check.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


class Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass(slots=True)
class Person:
    psn_no: str
    certno: str
    psn_name: str
    gend: str
    brdy: str
    insutype: str
    psn_type: str
    balc: Decimal
    insuplc_admdvs: str
    psn_cert_type: str = "01"


@dataclass(slots=True)
class Fee:
    feedetl_sn: str
    chrg_bchno: str
    amount: Decimal
    chrgitm_lv: str
    fulamt_ownpay_amt: Decimal
    preselfpay_amt: Decimal
    inscp_scp_amt: Decimal
    msgid: str
    item: dict = field(default_factory=dict)
    setl_id: str | None = None


@dataclass(slots=True)
class Settlement:
    setl_id: str
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    insutype: str
    clr_type: str
    clr_optins: str
    msgid: str
    setl_time: datetime
    fees: list[str]
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    psn_part_amt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal
    inscp_scp_amt: Decimal = Decimal(0)
    mid: bool = False
    reversed_by: str | None = None
    reversed_at: datetime | None = None
    output: dict = field(default_factory=dict)


@dataclass(slots=True)
class Visit:
    mdtrt_id: str
    psn_no: str
    insutype: str
    kind: str  # "otp" outpatient, "ipt" inpatient
    number: str  # ipt_otp_no or ipt_no
    status: str  # registered | admitted | discharged | cancelled
    fixmedins_code: str = ""
    med_type: str | None = None
    info: dict = field(default_factory=dict)
    diseases: list = field(default_factory=list)
    fees: dict[str, Fee] = field(default_factory=dict)
    settlements: dict[str, Settlement] = field(default_factory=dict)

    def active_settlements(self) -> list[Settlement]:
        return [s for s in self.settlements.values() if s.reversed_by is None]


@dataclass(slots=True)
class Logged:
    """An accepted call, kept by msgid so that 2601 can reverse it."""

    infno: str
    psn_no: str | None
    effect: dict
    reversed: bool = False


@dataclass(slots=True)
class Record:
    """A row a transaction uploaded (a filing, a department, a report...), kept for later queries."""

    id: str
    infno: str
    fixmedins_code: str
    data: dict
    created: datetime
    nodes: dict = field(default_factory=dict)  # the whole input, for queries that return more than one node
    revoked: bool = False
    revoked_at: datetime | None = None
    history: list[dict] = field(default_factory=list)


@dataclass(slots=True)
class StoredFile:
    file_qury_no: str
    filename: str
    content: bytes
    fixmedins_code: str
    expires: datetime
    kind: str  # upload | catalogue | reconciliation


@dataclass
class CentreState:
    limit: int = 10_000
    persons: Bounded = field(init=False)
    visits: Bounded = field(init=False)
    by_number: Bounded = field(init=False)  # (kind, ipt_otp_no/ipt_no) -> mdtrt_id
    by_person: Bounded = field(init=False)  # psn_no -> [mdtrt_id, ...]
    settlements: Bounded = field(init=False)  # setl_id -> Settlement (reversals included, by their own id)
    messages: Bounded = field(init=False)
    sign_ins: Bounded = field(init=False)
    files: Bounded = field(init=False)
    collections: dict[str, Bounded] = field(init=False)
    stock: Bounded = field(
        init=False
    )  # (fixmedins_code, med_list_codg, fixmedins_hilist_id, bchno) -> Decimal
    serial: int = 0

    def __post_init__(self) -> None:
        n = self.limit
        self.persons, self.visits, self.by_number, self.by_person = (Bounded(n) for _ in range(4))
        self.settlements, self.sign_ins, self.stock = Bounded(n * 2), Bounded(n), Bounded(n)
        self.messages = Bounded(n * 5)
        self.files = Bounded(max(16, n // 100))
        self.collections = {}

    def collection(self, name: str) -> Bounded:
        if name not in self.collections:
            self.collections[name] = Bounded(self.limit)
        return self.collections[name]

    def add_visit(self, visit: Visit) -> None:
        self.visits[visit.mdtrt_id] = visit
        self.by_number[(visit.kind, visit.number)] = visit.mdtrt_id
        ids = [i for i in self.by_person.get(visit.psn_no, []) if i in self.visits]
        self.by_person[visit.psn_no] = [*ids, visit.mdtrt_id]

    def live_by_number(self, kind: str, number: str) -> Visit | None:
        """The live (not cancelled) visit registered under this outpatient/inpatient number."""
        visit = self.visits.get(self.by_number.get((kind, number), ""))
        return visit if visit is not None and visit.status != "cancelled" else None

    def visits_of(self, psn_no: str) -> list[Visit]:
        return [self.visits[i] for i in self.by_person.get(psn_no, []) if i in self.visits]

    def find(self, collection: str, **match: Any) -> list[Record]:
        """Records of a collection whose data equals every given field (None matches anything)."""
        wanted = {k: str(v) for k, v in match.items() if v not in (None, "")}
        return [
            r
            for r in self.collection(collection).values()
            if all(str(r.data.get(k, "")) == v for k, v in wanted.items())
        ]

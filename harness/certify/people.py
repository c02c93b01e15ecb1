"""Generated people for certification cases: valid 身份证, Chinese names, plausible phone numbers.

A `Person` is consistent in itself: the birth date and sex are the ones the 身份证 number encodes (GB 11643:
region, birth date, sequence whose parity is the sex, ISO 7064 check digit), the region is a Yunnan county
(530102 五华区 ...), so a medical-insurance centre insures them in Yunnan and a CDC front end finds the
number, sex and birth date in agreement. Every value comes from a hypothesis strategy, so a failing case
shrinks towards the simplest person (张伟, 530102 19700101 001) and a seed reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hypothesis import strategies as st

from harness import idcard

# Common surnames first (shrinking goes to the first), then ones typical of Yunnan's peoples.
SURNAMES = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗段普杞刀岩"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰云海燕志"
# Yunnan counties under the prefectures of specs/medins/admdvs.yaml (first: 五华区, 昆明).
COUNTIES = (
    "530102", "530103", "530111", "530112", "530114", "530302", "530402", "530502", "530602",
    "530702", "530802", "530902", "532301", "532501", "532601", "532801", "532901", "533102",
    "533301", "533401",
)  # fmt: skip
MOBILE_PREFIXES = ("138", "139", "135", "136", "137", "150", "151", "158", "187", "188", "199")
EARLIEST = date(1930, 1, 1)
LATEST = date(2020, 12, 31)
ORIGIN = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    certno: str
    phone: str

    @property
    def surname(self) -> str:
        return self.name[0]

    @property
    def given(self) -> str:
        return self.name[1:]

    @property
    def birth(self) -> date:
        return idcard.birth_date(self.certno)

    @property
    def gender(self) -> str:
        """GB/T 2261.1: 1 male, 2 female."""
        return idcard.gender(self.certno)

    @property
    def region(self) -> str:
        return self.certno[:6]

    def renumbered(self, sequence: int) -> Person:
        """The same name, region and birth date under another sequence number (1-999; parity is the sex).

        A certification builds state for many cases; each needs a person the target has not seen (a
        person already in hospital cannot be admitted again), so each gets its own number.
        """
        return make(self.name, self.region, self.birth, sequence % 999 + 1, self.phone)

    def values(self) -> dict[str, str]:
        """The `person.*` placeholders of an examples file."""
        return {
            "person.name": self.name,
            "person.surname": self.surname,
            "person.given": self.given,
            "person.certno": self.certno,
            "person.birth": self.birth.isoformat(),
            "person.birth8": f"{self.birth:%Y%m%d}",
            "person.gender": self.gender,
            "person.sex": "M" if self.gender == "1" else "F",
            "person.fhir_gender": "male" if self.gender == "1" else "female",
            "person.phone": self.phone,
            "person.region": self.region,
        }


def make(name: str, region: str, birth: date, sequence: int, phone: str) -> Person:
    return Person(name, idcard.make(region, birth, sequence), phone)


DEFAULT = make("周兰", "530102", date(1985, 3, 7), 123, "13800000000")
"""The person examples are written for when no generated one is asked for."""


@st.composite
def people(draw: st.DrawFn) -> Person:
    surname = draw(st.sampled_from(SURNAMES))
    given = draw(st.text(alphabet=GIVEN, min_size=1, max_size=2))
    region = draw(st.sampled_from(COUNTIES))
    days = draw(st.integers(min_value=(EARLIEST - ORIGIN).days, max_value=(LATEST - ORIGIN).days))
    birth = ORIGIN + timedelta(days=days)  # shrinks towards 1970-01-01
    sequence = draw(st.integers(min_value=1, max_value=999))
    prefix = draw(st.sampled_from(MOBILE_PREFIXES))
    rest = draw(st.integers(min_value=0, max_value=99_999_999))
    return make(surname + given, region, birth, sequence, f"{prefix}{rest:08d}")

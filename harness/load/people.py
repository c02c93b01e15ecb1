"""Invented patients for generated traffic: valid 身份证, a matching birth date and sex, a Chinese name.

Every number passes the checks a medical-insurance centre or a CDC front end applies (GB 11643 check
digit, a Yunnan region, a real calendar date), so a load test exercises the accepting path and not the
validation error path. Names use characters every Chinese charset in use here can carry (GBK as well as
GB18030 and UTF-8), so a GBK template never meets a character it cannot encode.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from harness import idcard

__all__ = ["People", "Person"]

# Yunnan county-level regions (GB/T 2260): Kunming's districts, Dali, Gejiu, Qujing, Yuxi, Lijiang.
REGIONS = ("530102", "530103", "530111", "530112", "532901", "532501", "530302", "530402", "530702")
SURNAMES = "李王张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗段普杞和"
GIVEN = "云华丽明秀英建国芳艳海燕志强桂兰玉珍雪梅春丹勇军伟涛"
_FIRST_DAY = date(1935, 1, 1)
_DAYS = (date(2024, 12, 31) - _FIRST_DAY).days


@dataclass(frozen=True, slots=True)
class Person:
    idcard: str
    family: str
    given: str
    birth: date
    sex: str
    """HL7 table 0001: M or F (from the 身份证 sequence parity)."""
    number: int = 0
    """Position in its pool: a stable medical record number for the person."""

    @property
    def birth8(self) -> str:
        return self.idcard[6:14]

    @property
    def name(self) -> str:
        return self.family + self.given

    @property
    def gb_sex(self) -> str:
        """GB/T 2261.1: 1 male, 2 female."""
        return "1" if self.sex == "M" else "2"


class People:
    """A seeded pool of invented people (the same seed gives the same people).

    `next` returns a new person until the pool holds `size`, then people already seen, at random: a
    load run's traffic mixes first visits with returning patients, as an outpatient morning does, and a
    generator at thousands of messages a second stops paying for new numbers once the pool is full.
    """

    def __init__(self, seed: int | None = None, size: int = 5000) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.pool: list[Person] = []

    def new(self) -> Person:
        rng = self.rng
        birth = _FIRST_DAY + timedelta(days=rng.randrange(_DAYS))
        number = idcard.make(rng.choice(REGIONS), birth, rng.randrange(1000))
        given = rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
        sex = "M" if idcard.gender(number) == "1" else "F"
        return Person(number, rng.choice(SURNAMES), given, birth, sex, len(self.pool))

    def next(self) -> Person:
        if len(self.pool) < self.size:
            person = self.new()
            self.pool.append(person)
            return person
        return self.pool[int(self.rng.random() * self.size)]

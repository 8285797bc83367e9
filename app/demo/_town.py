"""Plan a fictional town's households and residents in memory (no database here).

Everything is drawn from one `random.Random`, in a fixed order, so the same seed and `today`
give the same town. The database layer (generator.py) turns the plan into rows.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from app.demo import _words as words
from app.demo._words import Name
from app.domain.atena import check_digit, with_check_digit
from app.domain.registry import ResidentStatus, Sex, Suppression
from app.domain.text import search_key
from app.domain.wareki import format_seireki, format_wareki

PREFECTURE = "架空県"
TOWN = "青葉台町"
TOWN_PREFIX = PREFECTURE + TOWN

# Household kinds for Japanese households and their weights, tuned so that the town has about
# 2.4 persons a household and an aging rate (65+) of about 36%, like many small towns.
_KINDS: tuple[tuple[str, int], ...] = (
    ("elderly_single", 16),
    ("single", 10),
    ("elderly_couple", 18),
    ("couple", 7),
    ("nuclear", 18),
    ("single_parent", 4),
    ("three_gen", 9),
    ("elderly_with_child", 15),
    ("siblings", 2),
    ("cohabit", 2),
)
_KIND_NAMES = tuple(kind for kind, _ in _KINDS)
_KIND_CUMULATIVE = tuple(sum(weight for _, weight in _KINDS[: i + 1]) for i in range(len(_KINDS)))

# Chance that a household came from outside the town (the rest were born here or married in).
_MOVED_IN = {
    "elderly_single": 0.12,
    "single": 0.55,
    "elderly_couple": 0.12,
    "couple": 0.45,
    "nuclear": 0.40,
    "single_parent": 0.35,
    "three_gen": 0.08,
    "elderly_with_child": 0.08,
    "siblings": 0.10,
    "cohabit": 0.50,
}
# Chance of living in an apartment (方書 with a room number) rather than a house.
_APARTMENT = {
    "elderly_single": 0.12,
    "single": 0.60,
    "elderly_couple": 0.06,
    "couple": 0.35,
    "nuclear": 0.20,
    "single_parent": 0.45,
    "three_gen": 0.0,
    "elderly_with_child": 0.03,
    "siblings": 0.05,
    "cohabit": 0.50,
}
# Every 31st household (offset 7) is foreign: about 3.2% of households, 2–3% of residents.
_FOREIGN_EVERY = 31
_FOREIGN_OFFSET = 7
_WORK_STATUSES = {"技能実習", "特定技能", "技術・人文知識・国際業務", "技能", "教育"}
_PERMANENT_STATUSES = {"永住者", "特別永住者"}
_SPOUSE_RELATIONSHIPS = {"妻", "夫", "妻（未届）", "夫（未届）", "子の妻", "子の夫"}


@dataclass(slots=True, eq=False)  # identity, not value: people with equal fields are still two people
class Person:
    relationship: str
    sex: Sex
    family_name: str
    family_kana: str
    given_name: str
    given_kana: str
    birth: date | None
    nationality: str = ""
    alias: str = ""
    former_surname: str = ""
    birth_text: str = ""
    became_on: date | None = None
    became_text: str = ""
    address_set_on: date | None = None
    address_set_text: str = ""
    previous_address: str = ""
    honseki: str = ""
    hittousha: str = ""
    status: ResidentStatus = ResidentStatus.RESIDENT
    status_changed_on: date | None = None
    suppressions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    atena_number: str = ""
    resident_code: str = ""
    auth_cert_serial: str = ""
    sign_cert_serial: str = ""

    @property
    def full_name(self) -> str:
        if self.nationality:
            return f"{self.family_name} {self.given_name}".strip()
        return f"{self.family_name}\u3000{self.given_name}"


@dataclass(slots=True, eq=False)
class Household:
    kind: str
    foreign: bool
    members: list[Person]
    postal_code: str = ""
    address: str = ""
    katagaki: str = ""
    household_number: str = ""
    special: str = ""  # the special case this household was picked for, so picks do not overlap


@dataclass(slots=True)
class Seal:
    resident_index: int  # index into Town.residents
    registration_number: str
    registered_on: date
    active: bool


@dataclass(slots=True)
class Tax:
    resident_index: int
    fiscal_year: int
    total_income: int
    taxable_income: int
    municipal_tax: int
    prefectural_tax: int
    dependants: int


@dataclass(slots=True)
class Town:
    households: list[Household]
    residents: list[Person]  # in household order
    household_of: list[int]  # household index for each resident
    seals: list[Seal]
    taxes: list[Tax]


def age_on(birth: date, on: date) -> int:
    """Age in whole years (a year is gained on the birthday; 2/29 births on 3/1 in common years)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 2/29 in a common year
        return d.replace(year=d.year - years, day=28)


def fiscal_year_of(d: date) -> int:
    """年度: the fiscal year starting on April 1."""
    return d.year if d.month >= 4 else d.year - 1


class _Planner:
    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self._used_addresses: set[str] = set()
        self._open_buildings: list[tuple[str, str, list[str]]] = []  # (postal, address, free katagaki)
        self._buildings_made = 0
        self._serials: set[str] = set()
        self._codes: set[str] = set()
        # How many 丁目 each district has is part of the town's shape, drawn once.
        self._chome_count = [rng.randint(2, 5) for _ in words.DISTRICTS]
        self._district_cumulative = tuple(
            sum(words.DISTRICT_WEIGHTS[: i + 1]) for i in range(len(words.DISTRICT_WEIGHTS))
        )

    # Small draws -----------------------------------------------------------------------------

    def _weighted(self, cumulative: tuple[int, ...]) -> int:
        return bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])

    def _tri(self, low: int, high: int, mode: int) -> int:
        return round(self.rng.triangular(low, high, mode))

    def date_between(self, first: date, last: date) -> date:
        if last <= first:
            return first
        return date.fromordinal(self.rng.randint(first.toordinal(), last.toordinal()))

    def birth_for_age(self, age: int) -> date:
        age = max(age, 0)
        latest = years_before(self.today, age)
        earliest = years_before(self.today, age + 1) + timedelta(days=1)
        return self.date_between(earliest, latest)

    def surname(self) -> Name:
        return words.SURNAMES[self._weighted(words.SURNAME_CUMULATIVE)]

    def given(self, sex: Sex, birth: date) -> Name:
        for last_year, males, females in words.GIVEN_NAMES:
            if birth.year <= last_year:
                return self.rng.choice(males if sex is Sex.MALE else females)
        raise AssertionError("unreachable: the last cohort is open-ended")

    def person(self, relationship: str, sex: Sex, age: int, family: Name) -> Person:
        birth = self.birth_for_age(age)
        given = self.given(sex, birth)
        return Person(relationship, sex, family.text, family.kana, given.text, given.kana, birth)

    # Households ------------------------------------------------------------------------------

    def household(self, index: int) -> Household:
        if index % _FOREIGN_EVERY == _FOREIGN_OFFSET:
            household = self.foreign_household()
            self._distinct_given_names(household.members)
            return household
        kind = _KIND_NAMES[self._weighted(_KIND_CUMULATIVE)]
        members = getattr(self, f"_kind_{kind}")()
        self._distinct_given_names(members)
        household = Household(kind, False, members)
        self._settle(household)
        self._place(household, _APARTMENT[kind])
        return household

    def _couple(self, husband_age: int, *, wife_heads: float = 0.05) -> list[Person]:
        rng = self.rng
        family = self.surname()
        wife_age = max(18, husband_age - self._tri(-3, 7, 2))
        if rng.random() < wife_heads:
            head = self.person("世帯主", Sex.FEMALE, wife_age, family)
            spouse = self.person("夫", Sex.MALE, husband_age, family)
            return [head, spouse]
        head = self.person("世帯主", Sex.MALE, husband_age, family)
        if rng.random() < 0.012:
            return [head, self._foreign_spouse(head, wife_age)]
        wife = self.person("妻", Sex.FEMALE, wife_age, family)
        if rng.random() < 0.12:  # 旧氏 is recorded only when the person asks for it
            wife.former_surname = self._other_surname(family).text
        return [head, wife]

    def _children(self, mother_age: int, count: int, family: Name, *, max_age: int = 24) -> list[Person]:
        rng = self.rng
        oldest = min(max_age, mother_age - self._tri(20, 38, 29))
        if oldest < 0:
            return []
        children: list[Person] = []
        age = rng.randint(max(0, oldest - 6), oldest)
        for _ in range(count):
            if age < 0:
                break
            sex = Sex.MALE if rng.random() < 0.51 else Sex.FEMALE
            children.append(self.person("子", sex, age, family))
            age -= rng.randint(1, 5)
        return children

    def _other_surname(self, not_this: Name) -> Name:
        for _ in range(10):
            name = self.surname()
            if name.kana != not_this.kana:
                return name
        return name

    def _kind_elderly_single(self) -> list[Person]:
        sex = Sex.FEMALE if self.rng.random() < 0.68 else Sex.MALE
        return [self.person("世帯主", sex, self._tri(65, 101, 81), self.surname())]

    def _kind_single(self) -> list[Person]:
        sex = Sex.MALE if self.rng.random() < 0.58 else Sex.FEMALE
        return [self.person("世帯主", sex, self._tri(18, 65, 27), self.surname())]

    def _kind_elderly_couple(self) -> list[Person]:
        return self._couple(self._tri(66, 96, 76))

    def _kind_couple(self) -> list[Person]:
        return self._couple(self._tri(23, 65, 30))

    def _kind_nuclear(self) -> list[Person]:
        members = self._couple(self._tri(27, 58, 40))
        wife = next(m for m in members if m.sex is Sex.FEMALE)
        assert wife.birth is not None
        count = (1, 1, 2, 2, 2, 2, 3, 3)[self.rng.randrange(8)] if self.rng.random() < 0.97 else 4
        family = Name(members[0].family_name, members[0].family_kana)
        children = self._children(age_on(wife.birth, self.today), count, family)
        return members + children if children else members

    def _kind_single_parent(self) -> list[Person]:
        sex = Sex.FEMALE if self.rng.random() < 0.8 else Sex.MALE
        family = self.surname()
        head = self.person("世帯主", sex, self._tri(26, 58, 40), family)
        assert head.birth is not None
        count = 1 if self.rng.random() < 0.55 else 2
        parent_age = age_on(head.birth, self.today) + (0 if sex is Sex.FEMALE else -2)
        return [head, *self._children(parent_age, count, family)]

    def _kind_three_gen(self) -> list[Person]:
        rng = self.rng
        members = self._couple(self._tri(36, 64, 48), wife_heads=0.0)
        head, wife = members[0], members[1]
        assert head.birth is not None and wife.birth is not None
        family = Name(head.family_name, head.family_kana)
        count = (0, 1, 1, 2, 2, 2, 3)[rng.randrange(7)]
        members += self._children(age_on(wife.birth, self.today), count, family, max_age=30)
        head_age = age_on(head.birth, self.today)
        roll = rng.random()
        if roll < 0.1 and not wife.nationality:
            # The wife's parent lives with them: 続柄 「妻の母」, with her maiden name.
            known = next((n for n in words.SURNAMES if n.text == wife.former_surname), None)
            maiden = known or self._other_surname(family)
            wife_age = age_on(wife.birth, self.today)
            members.append(
                self.person("妻の母", Sex.FEMALE, min(100, wife_age + self._tri(22, 38, 29)), maiden)
            )
            return members
        father_age = min(99, max(65, head_age + self._tri(22, 38, 29)))
        mother_age = min(100, max(63, father_age - self._tri(-2, 7, 2)))
        if roll < 0.45:
            members.append(self.person("父", Sex.MALE, father_age, family))
            members.append(self.person("母", Sex.FEMALE, mother_age, family))
        elif roll < 0.85:
            members.append(self.person("母", Sex.FEMALE, mother_age, family))
        else:
            members.append(self.person("父", Sex.MALE, father_age, family))
        return members

    def _kind_elderly_with_child(self) -> list[Person]:
        rng = self.rng
        head_age = self._tri(65, 95, 80)
        if rng.random() < 0.55:
            members = self._couple(head_age, wife_heads=0.0)
        else:
            sex = Sex.FEMALE if rng.random() < 0.7 else Sex.MALE
            members = [self.person("世帯主", sex, head_age, self.surname())]
        head = members[0]
        family = Name(head.family_name, head.family_kana)
        count = 1 if rng.random() < 0.88 else 2
        child_age = max(22, head_age - self._tri(22, 40, 30))
        for _ in range(count):
            sex = Sex.MALE if rng.random() < 0.55 else Sex.FEMALE
            members.append(self.person("子", sex, child_age, family))
            child_age = max(20, child_age - rng.randint(2, 6))
        son = members[-1]
        if son.sex is Sex.MALE and rng.random() < 0.15:
            wife = self.person("子の妻", Sex.FEMALE, max(22, child_age - rng.randint(-2, 5)), family)
            members.append(wife)
        return members

    def _kind_siblings(self) -> list[Person]:
        rng = self.rng
        family = self.surname()
        head_sex = Sex.FEMALE if rng.random() < 0.6 else Sex.MALE
        head_age = self._tri(60, 95, 75)
        head = self.person("世帯主", head_sex, head_age, family)
        sex = Sex.FEMALE if rng.random() < 0.6 else Sex.MALE
        age = max(55, head_age + rng.choice((-7, -5, -3, -2, 2, 3, 5)))
        older = age > head_age
        relationship = ("兄" if older else "弟") if sex is Sex.MALE else ("姉" if older else "妹")
        return [head, self.person(relationship, sex, age, family)]

    def _kind_cohabit(self) -> list[Person]:
        rng = self.rng
        family = self.surname()
        head_sex = Sex.MALE if rng.random() < 0.6 else Sex.FEMALE
        head_age = self._tri(22, 75, 35)
        head = self.person("世帯主", head_sex, head_age, family)
        other_age = max(18, head_age + rng.randint(-8, 8))
        if rng.random() < 0.5:
            # An unmarried partner (内縁): 「妻（未届）」 / 「夫（未届）」.
            sex = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
            relationship = "妻（未届）" if sex is Sex.FEMALE else "夫（未届）"
        else:
            sex = Sex.MALE if rng.random() < 0.5 else Sex.FEMALE
            relationship = "同居人"
        return [head, self.person(relationship, sex, other_age, self._other_surname(family))]

    def _distinct_given_names(self, members: list[Person]) -> None:
        """Two children of one family are not both called 樹."""
        seen: set[str] = set()
        for member in members:
            for _ in range(8):
                if member.given_name not in seen:
                    break
                assert member.birth is not None
                if member.nationality:
                    nat = next(n for n in words.NATIONALITIES if n.name == member.nationality)
                    name = self.rng.choice(nat.males if member.sex is Sex.MALE else nat.females)
                else:
                    name = self.given(member.sex, member.birth)
                member.given_name, member.given_kana = name.text, name.kana
            seen.add(member.given_name)

    # Foreign residents -----------------------------------------------------------------------

    def _nationality(self) -> words.Nationality:
        return words.NATIONALITIES[self._weighted(words.NATIONALITY_CUMULATIVE)]

    def _foreigner(
        self, nat: words.Nationality, relationship: str, sex: Sex, age: int, family: Name
    ) -> Person:
        rng = self.rng
        given = rng.choice(nat.males if sex is Sex.MALE else nat.females)
        birth = self.birth_for_age(age)
        return Person(
            relationship, sex, family.text, family.kana, given.text, given.kana, birth, nationality=nat.name
        )

    def _residence(self, person: Person, status: str) -> None:
        if status in _PERMANENT_STATUSES:
            until = None
        else:
            until = (self.today + timedelta(days=self.rng.randint(45, 1800))).isoformat()
        category = "特別永住者" if status == "特別永住者" else "中長期在留者"
        person.extra = {"residence_status": status, "period_of_stay_until": until, "category": category}

    def _japanese_alias(self, person: Person) -> None:
        # 通称: a Japanese-style name registered for daily use (common among special permanent residents).
        assert person.birth is not None
        given = self.given(person.sex, person.birth)
        person.alias = f"{self.surname().text}\u3000{given.text}"

    def foreign_household(self) -> Household:
        rng = self.rng
        nat = self._nationality()
        roll = rng.random()
        members: list[Person]
        if nat.name == "韓国" and roll < 0.35:
            # An older special permanent resident, born in Japan.
            family = rng.choice(nat.families)
            sex = Sex.FEMALE if rng.random() < 0.55 else Sex.MALE
            head = self._foreigner(nat, "世帯主", sex, self._tri(55, 95, 75), family)
            self._residence(head, "特別永住者")
            self._japanese_alias(head)
            household = Household("foreign_permanent", True, [head])
            head.became_on = head.birth
            self._resettle(household)
            self._place(household, 0.3)
            return household
        if roll < 0.6:
            sex = Sex.MALE if rng.random() < 0.6 else Sex.FEMALE
            head = self._foreigner(nat, "世帯主", sex, self._tri(19, 45, 24), rng.choice(nat.families))
            members = [head]
            kind = "foreign_single"
        else:
            family = rng.choice(nat.families)
            husband_age = self._tri(24, 50, 32)
            head = self._foreigner(nat, "世帯主", Sex.MALE, husband_age, family)
            # Vietnamese, Chinese, Korean … wives keep their family name; others often take the husband's.
            wife_family = (
                family if nat.name in ("フィリピン", "ブラジル", "米国") else rng.choice(nat.families)
            )
            wife = self._foreigner(
                nat, "妻", Sex.FEMALE, max(20, husband_age - rng.randint(-2, 6)), wife_family
            )
            members = [head, wife]
            kind = "foreign_couple"
            if roll >= 0.8:
                assert wife.birth is not None
                oldest = min(14, age_on(wife.birth, self.today) - 22)
                age = rng.randint(max(0, oldest - 4), max(0, oldest))
                for _ in range(1 if rng.random() < 0.6 else 2):
                    sex = Sex.MALE if rng.random() < 0.5 else Sex.FEMALE
                    members.append(self._foreigner(nat, "子", sex, age, family))
                    age = max(0, age - rng.randint(1, 4))
                kind = "foreign_family"
        status = rng.choice(nat.statuses)
        self._residence(head, status)
        dependant_status = "家族滞在" if status in _WORK_STATUSES or status == "留学" else status
        for member in members[1:]:
            self._residence(member, dependant_status)
        if nat.name == "中国" and status == "永住者" and rng.random() < 0.4:
            self._japanese_alias(head)
        household = Household(kind, True, members)
        # Foreign households arrived within the last few years, most from abroad.
        adult_births = [m.birth for m in members if m.birth is not None and age_on(m.birth, self.today) >= 18]
        earliest = max(years_before(max(adult_births), -18), years_before(self.today, 12))
        moved = self._recent_date(earliest)
        origin = words.COUNTRY_ADDRESS[nat.name] if rng.random() < 0.65 else self.elsewhere_address()
        for member in members:
            assert member.birth is not None
            if member.birth < moved:
                member.became_on = moved
                member.previous_address = origin
            else:
                member.became_on = member.birth
        self._resettle(household)
        self._place(household, 0.8)
        return household

    def _foreign_spouse(self, husband: Person, age: int) -> Person:
        """A foreign wife in a Japanese household (international marriage)."""
        rng = self.rng
        nat = words.NATIONALITIES[rng.choice((1, 2, 3, 0))]  # 中国, フィリピン, 韓国, ベトナム
        wife = self._foreigner(nat, "妻", Sex.FEMALE, age, rng.choice(nat.families))
        self._residence(wife, rng.choice(("日本人の配偶者等", "永住者")))
        if rng.random() < 0.5:
            wife.alias = f"{husband.family_name}\u3000{wife.given_kana.split(chr(0x3000))[0]}"
        return wife

    # Dates of residence ----------------------------------------------------------------------

    def _recent_date(self, earliest: date) -> date:
        """A past date after `earliest`, recent dates likelier (people move more than they stay)."""
        latest = self.today - timedelta(days=1)
        if earliest >= latest:
            return latest
        span = (latest - earliest).days
        return latest - timedelta(days=int(span * self.rng.random() ** 2))

    def _settle(self, household: Household) -> None:
        """住民となった年月日 / 転入前住所 for a Japanese household, then 住所を定めた年月日."""
        rng = self.rng
        today = self.today
        members = household.members
        if rng.random() < _MOVED_IN[household.kind]:
            adults = [m.birth for m in members if m.birth is not None and age_on(m.birth, today) >= 18]
            youngest_adult = max(adults) if adults else members[0].birth
            assert youngest_adult is not None
            earliest = max(years_before(youngest_adult, -18), years_before(today, 45))
            moved = self._recent_date(earliest)
            origin = self.elsewhere_address()
            for member in members:
                assert member.birth is not None
                if member.birth < moved:
                    member.became_on = moved
                    member.previous_address = origin
                else:
                    member.became_on = member.birth
        else:
            for member in members:
                assert member.birth is not None
                member.became_on = member.birth
                joined_later = member.relationship in _SPOUSE_RELATIONSHIPS or member.relationship in (
                    "妻の母",
                    "同居人",
                )
                if member.nationality:
                    joined_later = True
                if joined_later and rng.random() < 0.75:
                    lowest, highest = (65, 85) if member.relationship == "妻の母" else (22, 34)
                    highest = min(highest, age_on(member.birth, today))
                    at_age = rng.randint(min(lowest, highest), highest)
                    arrival = min(years_before(member.birth, -at_age), today - timedelta(days=30))
                    member.became_on = max(arrival, member.birth)
                    member.previous_address = (
                        self._country_of(member) if member.nationality else self.elsewhere_address()
                    )
        self._resettle(household)

    def _country_of(self, person: Person) -> str:
        return words.COUNTRY_ADDRESS.get(person.nationality, person.nationality)

    def _resettle(self, household: Household) -> None:
        """Some households moved within the town later (住所を定めた年月日 after 住民となった年月日)."""
        became = [m.became_on for m in household.members if m.became_on is not None]
        settled: date | None = None
        if became and self.rng.random() < 0.25:
            settled = self._recent_date(max(became))
        for member in household.members:
            assert member.became_on is not None
            member.address_set_on = max(member.became_on, settled) if settled else member.became_on

    # Addresses -------------------------------------------------------------------------------

    def _district(self) -> int:
        return self._weighted(self._district_cumulative)

    def _house_address(self) -> tuple[str, str]:
        rng = self.rng
        for _ in range(8):
            index = self._district()
            name, postal, kind = words.DISTRICTS[index]
            if kind == "oaza":
                lot = rng.randint(1, 3200)
                branch = f"の{rng.randint(1, 12)}" if rng.random() < 0.3 else ""
                address = f"{TOWN_PREFIX}{name}{lot}番地{branch}"
            else:
                chome = words.CHOME_NUMERALS[rng.randrange(self._chome_count[index])]
                address = f"{TOWN_PREFIX}{name}{chome}丁目{rng.randint(1, 32)}番{rng.randint(1, 28)}号"
            if address not in self._used_addresses:
                break
        self._used_addresses.add(address)
        return postal, address

    def _new_building(self) -> tuple[str, str, list[str]]:
        rng = self.rng
        postal, address = self._house_address()
        base = words.BUILDINGS[self._buildings_made % len(words.BUILDINGS)]
        round_ = self._buildings_made // len(words.BUILDINGS)
        name = base if round_ == 0 else f"{base}{round_ + 1}号棟"
        self._buildings_made += 1
        floors = rng.randint(2, 4)
        per_floor = rng.randint(3, 8)
        rooms = [
            f"{name}{floor}{room:02d}号室"
            for floor in range(1, floors + 1)
            for room in range(1, per_floor + 1)
        ]
        rng.shuffle(rooms)
        return postal, address, rooms

    def _place(self, household: Household, apartment_chance: float) -> None:
        rng = self.rng
        if rng.random() < apartment_chance:
            if not self._open_buildings or rng.random() < 0.15:
                self._open_buildings.append(self._new_building())
            slot = rng.randrange(len(self._open_buildings))
            postal, address, rooms = self._open_buildings[slot]
            household.katagaki = rooms.pop()
            if not rooms:
                self._open_buildings.pop(slot)
        else:
            postal, address = self._house_address()
        household.postal_code = postal
        household.address = address

    def elsewhere_address(self) -> str:
        rng = self.rng
        place = rng.choice(words.ELSEWHERE)
        if "大字" in place:
            return f"{place}{rng.randint(1, 2500)}番地"
        chome = words.CHOME_NUMERALS[rng.randrange(4)]
        return f"{place}{chome}丁目{rng.randint(1, 30)}番{rng.randint(1, 25)}号"

    def honseki_address(self) -> str:
        rng = self.rng
        if rng.random() < 0.55:
            name, _, kind = words.DISTRICTS[self._district()]
            if kind == "oaza":
                return f"{TOWN_PREFIX}{name}{rng.randint(1, 3200)}番地"
            return f"{TOWN_PREFIX}{name}{rng.choice(words.CHOME_NUMERALS[:3])}丁目{rng.randint(1, 32)}番地"
        place = rng.choice(words.ELSEWHERE)
        return f"{place}{rng.randint(1, 2500)}番地"

    # Numbers ---------------------------------------------------------------------------------

    def cert_serial(self) -> str:
        while True:
            serial = f"{self.rng.getrandbits(64):016X}"
            if serial not in self._serials:
                self._serials.add(serial)
                return serial

    def resident_code(self) -> str:
        """住民票コード: 10 digits + a modulus-11 check digit (weights 2–7)."""
        while True:
            body = str(self.rng.randrange(1_000_000_000, 10_000_000_000))
            code = body + str(check_digit(body))
            if code not in self._codes:
                self._codes.add(code)
                return code


# Planning the whole town -------------------------------------------------------------------


def plan_town(residents: int, seed: int, today: date) -> Town:
    if residents < 1:
        raise ValueError("residents must be at least 1")
    rng = random.Random(seed)
    planner = _Planner(rng, today)

    households: list[Household] = []
    total = 0
    while total < residents:
        household = planner.household(len(households))
        room = residents - total
        if len(household.members) > room:
            del household.members[room:]  # the head always comes first, so it stays
        households.append(household)
        total += len(household.members)

    _special_cases(planner, households, residents)
    _family_registers(planner, households)
    _numbers(planner, households)

    people: list[Person] = []
    household_of: list[int] = []
    for index, household in enumerate(households):
        for member in household.members:
            people.append(member)
            household_of.append(index)
            if not member.birth_text and member.birth is not None:
                member.birth_text = (
                    format_seireki(member.birth) if member.nationality else format_wareki(member.birth)
                )
    seals = _seals(planner, people)
    taxes = _taxes(planner, households, people)
    return Town(households, people, household_of, seals, taxes)


def _pick(rng: random.Random, candidates: list[Household], count: int, label: str) -> list[Household]:
    free = [h for h in candidates if not h.special]
    chosen = rng.sample(free, min(count, len(free)))
    for household in chosen:
        household.special = label
    return chosen


def _special_cases(planner: _Planner, households: list[Household], residents: int) -> None:
    """Statuses, 抑止 flags, rare characters and partial dates the counter must handle."""
    rng = planner.rng
    today = planner.today
    few = max(2, round(residents / 500))
    japanese = [h for h in households if not h.foreign]

    # Names with characters that must be stored exactly (髙, 﨑 U+FA11, 𠮷 U+20BB7).
    for name in words.RARE_SURNAMES:
        for household in _pick(rng, japanese, max(1, residents // 1500), "rare"):
            _rename_family(household, name)

    # 外字 not yet registered in the core system: the whole family's name has it.
    for i, household in enumerate(_pick(rng, japanese, max(2, residents // 750), "gaiji")):
        _rename_family(household, words.GAIJI_SURNAMES[i % len(words.GAIJI_SURNAMES)])
        for member in household.members:
            if member.family_name == household.members[0].family_name:
                member.suppressions.append(Suppression.GAIJI_PENDING.value)

    # 支援措置 (DV/stalking protection): the person and those living with them.
    for household in _pick(rng, households, max(2, residents // 600), "support"):
        for member in household.members:
            member.suppressions.append(Suppression.SUPPORT_MEASURE.value)

    # Moved in today (転入 day: the kiosk must refuse them).
    families = [h for h in japanese if h.kind in ("nuclear", "couple", "single")]
    for household in _pick(rng, families, max(2, residents // 1000), "moved_in_today"):
        origin = planner.elsewhere_address()
        for member in household.members:
            member.became_on = today
            member.address_set_on = today
            member.previous_address = origin

    # 転出予定: whole households moving out in the next two weeks …
    for household in _pick(rng, households, few, "moving_out"):
        when = today + timedelta(days=rng.randint(1, 14))
        destination = planner.elsewhere_address()
        for member in household.members:
            member.status = ResidentStatus.MOVING_OUT
            member.status_changed_on = when
            member.extra = {**member.extra, "moving_to": destination}
    # … and one member leaving a family that stays (the family is refused at the kiosk too).
    with_adult_child = [
        h
        for h in households
        if any(m.relationship == "子" and m.birth and age_on(m.birth, today) >= 18 for m in h.members)
    ]
    for household in _pick(rng, with_adult_child, max(1, few // 3), "member_moving_out"):
        child = _adult_child(household, today)
        child.status = ResidentStatus.MOVING_OUT
        child.status_changed_on = today + timedelta(days=rng.randint(1, 14))
        child.extra = {**child.extra, "moving_to": planner.elsewhere_address()}

    # 転出 (除票): households that left, and grown children who left their family. Only people
    # who had lived here for over a year, so that nobody leaves before arriving.
    long_ago = today - timedelta(days=400)
    settled = [h for h in households if all(m.became_on and m.became_on < long_ago for m in h.members)]
    for household in _pick(rng, settled, few, "moved_out"):
        when = today - timedelta(days=rng.randint(7, 400))
        destination = planner.elsewhere_address()
        for member in household.members:
            member.status = ResidentStatus.MOVED_OUT
            member.status_changed_on = when
            member.extra = {**member.extra, "moved_to": destination}
    settled_ids = {id(h) for h in settled}
    settled_with_adult_child = [h for h in with_adult_child if id(h) in settled_ids]
    for household in _pick(rng, settled_with_adult_child, few, "member_moved_out"):
        child = _adult_child(household, today)
        child.status = ResidentStatus.MOVED_OUT
        child.status_changed_on = today - timedelta(days=rng.randint(7, 400))
        child.extra = {**child.extra, "moved_to": planner.elsewhere_address()}

    # 死亡: elderly people living alone, or an elderly spouse (never the head of a household
    # that others still live in, which would need a 世帯主変更).
    old = [
        h
        for h in settled
        if not h.foreign and h.kind in ("elderly_single", "elderly_couple", "three_gen", "elderly_with_child")
    ]
    for household in _pick(rng, old, max(3, residents // 300), "deceased"):
        if len(household.members) == 1:
            person = household.members[0]
        else:
            person = max(household.members[1:], key=lambda m: (today - m.birth).days if m.birth else 0)
        person.status = ResidentStatus.DECEASED
        person.status_changed_on = today - timedelta(days=rng.randint(3, 400))

    # Partly unknown birth dates of the oldest residents, kept as text beside the date.
    very_old = [
        h
        for h in japanese
        if h.kind == "elderly_single"
        and h.members[0].birth is not None
        and age_on(h.members[0].birth, today) >= 90
        and h.members[0].became_on == h.members[0].birth
    ]
    forms = ("year_only", "early_month", "unknown", "estimated", "non_calendar")
    for i, household in enumerate(_pick(rng, very_old, max(3, residents // 400), "partial_date")):
        _partial_birth(household.members[0], forms[i % len(forms)])


def _adult_child(household: Household, today: date) -> Person:
    return next(
        m for m in household.members if m.relationship == "子" and m.birth and age_on(m.birth, today) >= 18
    )


def _rename_family(household: Household, name: Name) -> None:
    old = household.members[0].family_name
    for member in household.members:
        if member.family_name == old and not member.nationality:
            member.family_name = name.text
            member.family_kana = name.kana


def _partial_birth(person: Person, form: str) -> None:
    """Write the birth date as the register would if it were partly unknown (standard spec 1.1.8)."""
    birth = person.birth
    assert birth is not None
    wareki = format_wareki(birth)
    era_and_year = wareki.split("年")[0] + "年"
    date_value: date | None
    if form == "year_only":
        text, date_value = f"{era_and_year}頃", date(birth.year, 7, 1)  # mid-year as the working date
    elif form == "early_month":
        text, date_value = f"{era_and_year}{birth.month}月上旬", date(birth.year, birth.month, 5)
    elif form == "unknown":
        text, date_value = "年月日不詳", None
    elif form == "estimated":
        text, date_value = f"推定{wareki}", birth
    else:
        # 2/29 of a common year is recorded as written; there is no calendar date for it.
        year = birth.year if birth.year % 4 else birth.year + 1
        text, date_value = f"{format_wareki(date(year, 2, 28))[:-3]}29日", None
    person.birth = date_value
    person.birth_text = text
    # Born in the town: 住民となった年月日 and 住所を定めた年月日 are the same uncertain date.
    if person.address_set_on == person.became_on:
        person.address_set_on = date_value
        person.address_set_text = text
    person.became_on = date_value
    person.became_text = text


def _family_registers(planner: _Planner, households: list[Household]) -> None:
    """本籍 and 筆頭者 for Japanese nationals (foreign residents have none)."""
    rng = planner.rng
    for household in households:
        members = household.members
        head = members[0]
        if head.nationality:
            continue
        honseki = planner.honseki_address()
        husband = next(
            (m for m in members[:2] if m.sex is Sex.MALE and m.relationship in ("世帯主", "夫")), head
        )
        father = next((m for m in members if m.relationship == "父"), None)
        for member in members:
            if member.nationality:
                continue
            rel = member.relationship
            member.honseki = honseki
            if rel in ("世帯主", "妻", "夫", "子"):
                member.hittousha = husband.full_name
            elif rel in ("父", "母"):
                member.hittousha = father.full_name if father else _deceased_name(planner, member, Sex.MALE)
            elif rel == "子の妻":
                husband_of = next((m for m in members if m.relationship == "子" and m.sex is Sex.MALE), head)
                member.hittousha = husband_of.full_name
            else:  # 妻の母, siblings, 同居人, partners: their own register
                member.honseki = planner.honseki_address()
                member.hittousha = member.full_name
        son = next((m for m in members if m.relationship == "子" and m.sex is Sex.MALE), None)
        if son is not None and any(m.relationship == "子の妻" for m in members):
            son.hittousha = son.full_name  # a married son has his own register
        if len(members) == 1:
            if head.sex is Sex.FEMALE and household.kind == "elderly_single" and rng.random() < 0.7:
                head.hittousha = _deceased_name(planner, head, Sex.MALE)  # a late husband stays 筆頭者
            elif household.kind == "single" and rng.random() < 0.5:
                head.hittousha = _deceased_name(
                    planner, head, Sex.MALE, older=True
                )  # still in a parent's register


def _deceased_name(planner: _Planner, person: Person, sex: Sex, *, older: bool = False) -> str:
    """The name of a 筆頭者 not living in the town (a late spouse or a parent)."""
    base = person.birth or planner.today
    birth = years_before(base, 28 if older else 3)
    return f"{person.family_name}\u3000{planner.given(sex, birth).text}"


def _numbers(planner: _Planner, households: list[Household]) -> None:
    """世帯番号, 宛名番号, 住民票コード and card certificate serials."""
    rng = planner.rng
    today = planner.today
    household_body = 100_000
    atena_body = 1_000_000
    for household in households:
        household_body += rng.randint(1, 3)  # gaps: households that ended over the years
        household.household_number = with_check_digit(f"{household_body:09d}")
        for member in household.members:
            atena_body += rng.randint(1, 3)
            member.atena_number = with_check_digit(f"{atena_body:09d}")
            member.resident_code = planner.resident_code()
            adult = member.birth is None or age_on(member.birth, today) >= 15
            # About three in four adults hold a マイナンバーカード with both certificates.
            if adult and rng.random() < (0.75 if not member.nationality else 0.55):
                member.auth_cert_serial = planner.cert_serial()
                member.sign_cert_serial = planner.cert_serial()


def _age_or_old(person: Person, on: date) -> int:
    return age_on(person.birth, on) if person.birth is not None else 95


def _seal_chance(age: int, foreign: bool) -> float:
    if age < 15:
        return 0.0
    if foreign:
        return 0.4
    if age < 20:
        return 0.15
    if age < 30:
        return 0.5
    return 0.74


def _seals(planner: _Planner, people: list[Person]) -> list[Seal]:
    """印鑑登録 for most residents 15 and over; the registration ends when they leave or die."""
    rng = planner.rng
    today = planner.today
    seals: list[Seal] = []
    for index, person in enumerate(people):
        if person.became_on == today:
            continue  # just moved in: not registered yet
        age = _age_or_old(person, today)
        if rng.random() >= _seal_chance(age, bool(person.nationality)):
            continue
        fifteenth = years_before(person.birth, -15) if person.birth else years_before(today, 60)
        first = max(fifteenth, person.became_on or fifteenth)
        last = today if person.status_changed_on is None else min(today, person.status_changed_on)
        registered = planner.date_between(first, last)
        active = person.status in (ResidentStatus.RESIDENT, ResidentStatus.MOVING_OUT)
        seals.append(Seal(index, "", registered, active))
    # 登録番号 in order of registration, as the counter would have handed them out.
    seals.sort(key=lambda s: (s.registered_on, s.resident_index))
    for number, seal in enumerate(seals, start=1):
        seal.registration_number = f"{number:08d}"
    return seals


# 住民税 (simplified): 給与所得控除 and 公的年金等控除 approximations, 基礎控除 430,000 yen,
# 所得割 6% municipal + 4% prefectural, 均等割 3,000 + 1,000 yen.
_NON_TAXABLE_LIMIT = 450_000
_DEPENDANT_LIMIT = 480_000


def _salary_income(salary: int) -> int:
    if salary <= 0:
        return 0
    if salary <= 1_625_000:
        deduction = 550_000
    elif salary <= 1_800_000:
        deduction = salary * 40 // 100 - 100_000
    elif salary <= 3_600_000:
        deduction = salary * 30 // 100 + 80_000
    elif salary <= 6_600_000:
        deduction = salary * 20 // 100 + 440_000
    elif salary <= 8_500_000:
        deduction = salary * 10 // 100 + 1_100_000
    else:
        deduction = 1_950_000
    return max(0, salary - deduction)


def _earnings(rng: random.Random, age: int, sex: Sex) -> tuple[int, int]:
    """(salary, pension) in yen for a year."""

    def amount(median: float, sigma: float) -> int:
        return int(rng.lognormvariate(0, sigma) * median) // 1000 * 1000

    roll = rng.random()
    if age < 23:
        return (0, 0) if roll < 0.72 else (rng.randrange(100, 1300) * 1000, 0)
    if age < 65:
        if sex is Sex.MALE:
            if roll < 0.06:
                return 0, 0
            return amount(4_300_000 if age >= 30 else 3_000_000, 0.4), 0
        if roll < 0.22:
            return 0, 0
        if roll < 0.6:
            return rng.randrange(500, 1400) * 1000, 0
        return amount(3_200_000, 0.4), 0
    pension = 0 if roll < 0.08 else rng.randrange(500, 2600) * 1000
    salary = amount(1_900_000, 0.35) if age < 75 and rng.random() < 0.3 else 0
    return salary, pension


def _taxes(planner: _Planner, households: list[Household], people: list[Person]) -> list[Tax]:
    """課税 records for residents 16 and over for the current and the previous 年度."""
    rng = planner.rng
    today = planner.today
    fiscal_year = fiscal_year_of(today)
    index_of = {id(person): i for i, person in enumerate(people)}
    taxes: list[Tax] = []
    for household in households:
        incomes: list[tuple[Person, int, int]] = []  # person, 合計所得金額, social insurance
        for member in household.members:
            age = _age_or_old(member, today)
            if age < 16:
                incomes.append((member, 0, 0))
                continue
            salary, pension = _earnings(rng, age, member.sex)
            pension_income = max(0, pension - (1_100_000 if age >= 65 else 600_000))
            total = _salary_income(salary) + pension_income
            insurance = salary * 145 // 1000 + pension * 8 // 100
            incomes.append((member, total, insurance))
        earner = max(incomes, key=lambda item: item[1])
        for member, total, insurance in incomes:
            if _age_or_old(member, today) < 16:
                continue
            dependants = 0
            deductions = 430_000 + insurance
            if member is earner[0] and total > 0:
                for other, other_total, _ in incomes:
                    if other is not member and other_total <= _DEPENDANT_LIMIT:
                        dependants += 1
                        other_age = _age_or_old(other, today)
                        if other_age >= 16:
                            deductions += 450_000 if 19 <= other_age <= 22 else 330_000
            for year, factor in ((fiscal_year, 1.0), (fiscal_year - 1, rng.uniform(0.92, 1.08))):
                if not _resident_on(member, date(year, 1, 1)):
                    continue
                if member.birth is not None and age_on(member.birth, date(year, 1, 1)) < 15:
                    continue
                year_total = int(total * factor) // 1000 * 1000
                year_deductions = int(deductions * factor)
                taxable = max(0, year_total - year_deductions) // 1000 * 1000
                limit = _NON_TAXABLE_LIMIT if dependants == 0 else 350_000 * (1 + dependants) + 310_000
                young = member.birth is not None and age_on(member.birth, date(year, 1, 1)) < 20
                if year_total <= limit or (young and year_total <= 1_350_000):
                    municipal = prefectural = 0
                else:
                    municipal = taxable * 6 // 100 // 100 * 100 + 3_000
                    prefectural = taxable * 4 // 100 // 100 * 100 + 1_000
                taxes.append(
                    Tax(index_of[id(member)], year, year_total, taxable, municipal, prefectural, dependants)
                )
    return taxes


def _resident_on(person: Person, day: date) -> bool:
    """Registered in the town on `day` (住民税 is assessed where one lived on January 1)."""
    if person.became_on is not None and person.became_on > day:
        return False
    if person.status in (ResidentStatus.MOVED_OUT, ResidentStatus.DECEASED):
        return person.status_changed_on is None or person.status_changed_on > day
    return True


def resident_search_key(person: Person) -> str:
    return search_key(
        person.family_name, person.given_name, person.family_kana, person.given_kana, person.alias
    )

"""Made-up example households for trying the rules out (the admin's 試算 / dry run).

Ages are fixed and birth dates follow from `today`, so an example family stays 40, 38, 8 and 0
years old whenever it is used. Nobody here is a real resident: dry runs read no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from app.domain.lifeevents.model import Insurance, Member, PensionType, PersonSex

__all__ = ["SampleHousehold", "sample_households"]


@dataclass(frozen=True, slots=True)
class SampleHousehold:
    key: str
    label_ja: str
    label_en: str
    members: tuple[Member, ...]


def _born(today: date, years: int, days_after_birthday: int = 45) -> date:
    """A birth date for someone `years` old today, `days_after_birthday` past the birthday."""
    anniversary = today - timedelta(days=days_after_birthday)
    try:
        return anniversary.replace(year=anniversary.year - years)
    except ValueError:  # 29 February
        return anniversary.replace(year=anniversary.year - years, day=28)


def sample_households(today: date) -> tuple[SampleHousehold, ...]:
    return (
        SampleHousehold(
            "family",
            "4人家族（40歳・38歳の夫婦、8歳と0歳の子）",
            "Family of four (couple aged 40 and 38, children aged 8 and 0)",
            (
                Member(
                    "s1",
                    "見本 太郎",
                    _born(today, 40),
                    "世帯主",
                    PersonSex.MALE,
                    Insurance.EMPLOYER,
                    PensionType.DAI2,
                    has_my_number_card=True,
                    has_sign_certificate=True,
                    has_seal_registration=True,
                ),
                Member(
                    "s2",
                    "見本 花子",
                    _born(today, 38, 120),
                    "妻",
                    PersonSex.FEMALE,
                    Insurance.EMPLOYER,
                    PensionType.DAI3,
                    has_my_number_card=True,
                ),
                Member("s3", "見本 一郎", _born(today, 8, 200), "子", PersonSex.MALE, Insurance.EMPLOYER),
                Member(
                    "s4",
                    "見本 さくら",
                    today - timedelta(days=60),
                    "子",
                    PersonSex.FEMALE,
                    Insurance.EMPLOYER,
                ),
            ),
        ),
        SampleHousehold(
            "elderly",
            "高齢の夫婦（77歳・72歳、夫は要介護認定あり）",
            "Elderly couple (77 and 72; the husband has a care certification)",
            (
                Member(
                    "s1",
                    "見本 一男",
                    _born(today, 77),
                    "世帯主",
                    PersonSex.MALE,
                    Insurance.KOKI,
                    PensionType.NONE,
                    has_care_certification=True,
                    has_my_number_card=True,
                ),
                Member(
                    "s2",
                    "見本 和子",
                    _born(today, 72),
                    "妻",
                    PersonSex.FEMALE,
                    Insurance.KOKUHO,
                    PensionType.NONE,
                ),
            ),
        ),
        SampleHousehold(
            "single_foreign",
            "外国籍の単身者（28歳、国民健康保険）",
            "Foreign resident living alone (28, National Health Insurance)",
            (
                Member(
                    "s1",
                    "SAMPLE Anna",
                    _born(today, 28),
                    "世帯主",
                    PersonSex.FEMALE,
                    Insurance.KOKUHO,
                    PensionType.DAI1,
                    is_foreign=True,
                ),
            ),
        ),
        SampleHousehold(
            "unknown",
            "保険・年金が分からない3人世帯（45歳・20歳・16歳）",
            "Household of three whose insurance and pension are unknown (45, 20, 16)",
            (
                Member("s1", "見本 明", _born(today, 45), "世帯主", PersonSex.MALE),
                Member("s2", "見本 翼", _born(today, 20, 10), "子", PersonSex.MALE),
                Member("s3", "見本 光", _born(today, 16), "子", PersonSex.FEMALE),
            ),
        ),
    )

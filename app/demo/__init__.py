"""A deterministic fictional town (架空県 青葉台町) for demonstrations, tests and load tests."""

from app.demo.generator import (
    DEMO_ACCOUNTS,
    DEMO_MUNICIPALITY_CODE,
    DemoDataError,
    DemoDataExists,
    DemoSummary,
    generate_demo,
)

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_MUNICIPALITY_CODE",
    "DemoDataError",
    "DemoDataExists",
    "DemoSummary",
    "generate_demo",
]

"""Fixtures for the template tests: template.yaml parsed once per session."""

import copy
from pathlib import Path

import pytest

from template_checks import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


@pytest.fixture(scope="session")
def parsed_template() -> dict:
    return load_template(TEMPLATE_PATH)


@pytest.fixture
def template(parsed_template) -> dict:
    """A private copy each test may break."""
    return copy.deepcopy(parsed_template)

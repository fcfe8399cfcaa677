"""Shared fixtures for the token service's unit tests."""

import pytest

from tests.unit.tokens.tokens_samples import sample_catalog_data
from tokens.catalog import Catalog, parse_catalog


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog(sample_catalog_data())

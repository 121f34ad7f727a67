"""pyproject.toml: metadata that installs without setuptools' deprecation banners."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def test_license_is_an_spdx_expression_and_the_backend_reads_it() -> None:
    # A `license = { text = ... }` table makes setuptools >= 77 print a deprecation banner on every
    # install (PEP 639); an SPDX string is the supported form, read by setuptools >= 77.
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    (requirement,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requirement)
    assert m is not None and int(m.group(1)) >= 77
    assert not any(c.startswith("License ::") for c in doc["project"].get("classifiers", []))

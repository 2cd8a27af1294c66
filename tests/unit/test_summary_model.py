"""summary.json has one model, and docs/outputs.md describes exactly that model."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ray_jobs.metrics.summary import Summary, markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "outputs.md"


def test_docs_field_table_is_the_model():
    text = DOCS.read_text()
    documented = re.search(r"<!-- summary-fields:start -->\n(.*?)\n<!-- summary-fields:end -->", text, re.S)
    assert documented, "docs/outputs.md lost its generated summary table"
    assert documented.group(1) == markdown_table(), "regenerate it: python -m ray_jobs.metrics.summary"


def test_unknown_or_missing_fields_are_refused():
    with pytest.raises(ValidationError, match="kind"):
        Summary.model_validate({"dataset": "humaneval"})
    with pytest.raises(ValidationError, match="total_wall_s|Extra inputs"):
        Summary.model_validate({"timing": {}, "total_wall_s": 1})


def test_extraction_counts_every_place_and_skips_samples_without_a_response():
    from ray_jobs.metrics.summary import extraction_section

    section = extraction_section("auto", ["fence", "fence", "none", None, "tag"])
    assert section == {"rules": "auto", "found": {"fence": 2, "tag": 1, "text": 0, "none": 1}}
    Summary.model_fields["extraction"].annotation.__args__[0].model_validate(section)  # ExtractionStats accepts it

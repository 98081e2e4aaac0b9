"""The shipped RFC 3463 list and classify_enhanced."""

from __future__ import annotations

import datetime

import pytest

from exporter import enhanced
from exporter.enhanced import OTHER, EnhancedCodesError, classify_enhanced, expand, load, parse_document


def test_list_has_the_rfc_3463_basics_in_every_class():
    table = load()
    for template in ("X.0.0", "X.1.1", "X.1.2", "X.2.2", "X.3.4", "X.4.4", "X.4.7", "X.5.1", "X.7.1"):
        for cls in "245":
            assert f"{cls}{template[1:]}" in table, template


def test_list_has_registry_additions_after_rfc_3463():
    table = load()
    for code in ("5.1.10", "5.7.8", "4.7.26", "5.7.27", "5.7.29", "5.6.10"):
        assert code in table


def test_descriptions_are_non_empty_and_short():
    table = load()
    assert len(table) >= 3 * 80
    for code, text in table.items():
        assert text.strip() == text and 0 < len(text) <= 60, code


def test_classes_share_the_description_of_their_template():
    table = load()
    assert table["2.1.5"] == table["4.1.5"] == table["5.1.5"]
    assert table["5.1.1"] != table["5.2.2"]


def test_only_classes_2_4_5_exist():
    assert all(code[0] in "245" for code in load())


def test_retrieved_is_a_date():
    datetime.date.fromisoformat(enhanced.retrieved())


def test_load_returns_a_fresh_map():
    first = load()
    first["5.1.1"] = "changed"
    assert load()["5.1.1"] != "changed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.1.1", "5.1.1"),
        ("4.7.0", "4.7.0"),
        ("2.0.0", "2.0.0"),
        ("5.7.26", "5.7.26"),
        ("4.4.7", "4.4.7"),
        (" 5.2.2 ", "5.2.2"),
        ("5.1.1\r", "5.1.1"),
        ("5.01.001", "5.1.1"),  # 1*3digit allows leading zeros: the same code
        ("5.007.01", "5.7.1"),
        ("3.1.1", OTHER),  # no class 3
        ("1.1.1", OTHER),
        ("6.1.1", OTHER),
        ("5.9.1", OTHER),  # no subject 9
        ("5.1.99", OTHER),  # well formed, not registered
        ("5.4.316", OTHER),  # Exchange's own detail codes are not in the registry
        ("5.1", OTHER),
        ("5.1.1.1", OTHER),
        ("5.1.1a", OTHER),
        ("5.1.1000", OTHER),
        ("5..1", OTHER),
        ("", OTHER),
        ("   ", OTHER),
        ("550", OTHER),
        ("X.1.1", OTHER),
        ("５.1.1", OTHER),  # a full-width digit is not a digit of the grammar
        ("5.1.1 5.1.1", OTHER),
    ],
)
def test_classify_enhanced(text, expected):
    assert classify_enhanced(text) == expected


def test_classify_none_is_none():
    assert classify_enhanced(None) is None


def test_known_labels_are_the_same_string_object():
    assert classify_enhanced("".join(["5", ".1", ".1"])) is classify_enhanced("5.1.1")


def test_expand_makes_one_code_per_class():
    assert expand({"X.9.9": "nine"}) == {"2.9.9": "nine", "4.9.9": "nine", "5.9.9": "nine"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[", "not valid YAML"),
        ("codes: []\n", "keys"),
        ("retrieved: x\ncodes: []\n", "non-empty"),
        ("retrieved: x\ncodes: [{code: 5.1.1, description: d}]\n", "template"),
        ("retrieved: x\ncodes: [{code: X.01.1, description: d}]\n", "template"),
        ("retrieved: x\ncodes: [{code: X.1.1, description: ''}]\n", "description"),
        ("retrieved: x\ncodes: [{code: X.1.1, description: d}, {code: X.1.1, description: e}]\n", "twice"),
        ("retrieved: x\ncodes: [{code: X.1.1, description: d, note: n}]\n", "expected code"),
        ("retrieved: x\nextra: 1\ncodes: [{code: X.1.1, description: d}]\n", "keys"),
    ],
)
def test_malformed_lists_are_refused_with_a_reason(text, message):
    with pytest.raises(EnhancedCodesError, match=message):
        parse_document(text, "test list")


def test_a_good_document_parses():
    retrieved, templates = parse_document(
        "retrieved: '2024-01-02'\ncodes:\n  - {code: X.1.1, rfc: 3463, description: ' gone '}\n"
    )
    assert retrieved == "2024-01-02"
    assert templates == {"X.1.1": "gone"}

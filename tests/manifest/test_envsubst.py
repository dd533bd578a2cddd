import pytest

from batchrun.manifest.envsubst import SubstitutionError, substitute

ENVIRON = {"REGION": "eu", "EMPTY": "", "DATE": "2026-11-26"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("${REGION}", "eu"),
        ("sales-${REGION}-${DATE}", "sales-eu-2026-11-26"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${REGION:-fallback}", "eu"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a default with spaces}", "a default with spaces"),
        ("${EMPTY}", ""),
        ("$$", "$"),
        ("cost: $$5", "cost: $5"),
        ("$${REGION}", "${REGION}"),
        ("$$${REGION}", "$eu"),
        ("^sales$", "^sales$"),
        ("$REGION", "$REGION"),
    ],
)
def test_substitutes_references_from_the_given_environ(text: str, expected: str) -> None:
    assert substitute(text, ENVIRON) == expected


def test_unset_variable_without_default_names_the_variable_and_its_offset() -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute("/data/${NOPE}/in", ENVIRON)
    assert "environment variable NOPE is not set" in caught.value.message
    assert "${NOPE:-default}" in caught.value.message
    assert caught.value.offset == 6


@pytest.mark.parametrize("text", ["${1BAD}", "${REGION", "${REGION:default}", "${}", "x ${ y }"])
def test_malformed_reference_is_an_error_that_shows_the_right_forms(text: str) -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute(text, ENVIRON)
    assert "is not a valid substitution: write ${NAME} or ${NAME:-default}" in str(caught.value)
    assert caught.value.offset == text.index("${")


@pytest.mark.parametrize(
    ("text", "offset"),
    [("${A:-${B}}", 5), ("x ${A:-${REGION}}", 7), ("${A:-a ${B:-c}}", 7), ("${A:-$${B}}", 6)],
)
def test_a_reference_inside_a_default_is_an_error_at_the_inner_reference(
    text: str, offset: int
) -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute(text, ENVIRON)
    assert "nested ${...} in a default is not supported" in caught.value.message
    assert caught.value.offset == offset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A:-x}}", "x}"),  # as the shell: the default ends at the first '}'
        ('{"n": ${N:-1}}', '{"n": 1}'),
        ('{"r": "${REGION:-x}"}', '{"r": "eu"}'),
    ],
)
def test_a_brace_after_a_default_is_text_as_in_the_shell(text: str, expected: str) -> None:
    assert substitute(text, ENVIRON) == expected


@pytest.mark.parametrize("text", ["${ODD}", "x-${ODD:-fallback}"])
def test_a_value_that_is_not_utf8_is_an_error_naming_the_variable_not_its_value(
    text: str,
) -> None:
    # bytes that are not UTF-8 in the environment are lone surrogates in Python
    with pytest.raises(SubstitutionError) as caught:
        substitute(text, {"ODD": "token-\udcff"})
    assert "environment variable ODD holds bytes that are not UTF-8 text" in caught.value.message
    assert "token" not in caught.value.message
    assert caught.value.offset == text.index("${")


def test_an_empty_variable_still_takes_its_default() -> None:
    assert substitute("${EMPTY:-eu}", {"EMPTY": ""}) == "eu"

"""read_class_map: the one class-map reader (datasets, evaluation, inference)."""
import pytest

from opentad.utils.class_map import read_class_map


def test_file_lines_are_the_classes_in_order(tmp_path):
    path = tmp_path / "category_idx.txt"
    path.write_bytes(b"Diving\r\n\nCliff Diving\n  \nBasketballDunk")  # CRLF, blank lines, no final newline
    assert read_class_map(str(path)) == ["Diving", "Cliff Diving", "BasketballDunk"]
    assert read_class_map(path) == ["Diving", "Cliff Diving", "BasketballDunk"]  # a PathLike too
    assert read_class_map(("a", "b")) == ["a", "b"]


def test_missing_file_names_the_key_and_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^--class-map: class map file not found: '.*nothing\.txt'"):
        read_class_map(str(tmp_path / "nothing.txt"), key="--class-map")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("\n\n", "lists no class"),
        ("a\nb\na\nc\nb\n", "lists classes more than once: ['a', 'b']"),
    ],
)
def test_bad_files_name_the_key_and_the_problem(tmp_path, text, needle):
    path = tmp_path / "map.txt"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_class_map(str(path), key="dataset.test.class_map")
    assert str(info.value) == f"dataset.test.class_map {str(path)!r} {needle}"


def test_a_list_of_something_else_is_refused():
    with pytest.raises(ValueError, match=r"class_map must be a class map file or a list of class names, got \[1, 2\]"):
        read_class_map([1, 2])
    with pytest.raises(ValueError, match=r"class_map \(list\) lists no class"):
        read_class_map([])

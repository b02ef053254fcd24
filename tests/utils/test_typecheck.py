"""check_value / describe: hand-worked cases for each annotation form constructors use."""
from typing import Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import pytest
import torch

from opentad.utils.typecheck import check_value, describe, resolved_annotations


class Custom:
    pass


@pytest.mark.parametrize(
    "value, annotation, ok",
    [
        (3, int, True), (True, int, False), ("five", int, False), (3.0, int, False),
        (3, float, True), (2.5, float, True), (False, float, False), ("abc", float, False),
        (True, bool, True), (1, bool, False), ("yes", bool, False),
        ("x", str, True), (3, str, False),
        (None, Optional[int], True), (4, Optional[int], True), ("a", Optional[int], False),
        (None, int, False),
        (1, Union[int, str], True), ("a", Union[int, str], True), (1.5, Union[int, str], False),
        ("abc", Union[float, torch.Tensor], False), (torch.ones(1), Union[float, torch.Tensor], True),
        ([1, 2], List[int], True), ((1, 2), List[int], True), ([1, "b"], List[int], False),
        ("ab", Sequence[str], False), (["ab"], Sequence[str], True),
        ([1, 2], Tuple[int, int], True), ([1, 2, 3], Tuple[int, int], False), ([1, 2, 3], Tuple[int, ...], True),
        ([(1, 2)], List[Tuple[int, int]], True), ([(1, "x")], List[Tuple[int, int]], False),
        ({"a": 1}, Dict[str, int], True), ({"a": "b"}, Dict[str, int], False), ([("a", 1)], Dict[str, int], False),
        ({"k": [1]}, Mapping[str, Any], True),
        ("bf16", Literal["bf16", "fp16"], True), ("fp8", Literal["bf16", "fp16"], False),
        (1, Literal[True], False),
        (5, list, False), ([5], list, True), ({}, dict, True),
        # what cannot be judged passes; a plain class refuses strings and numbers that are not instances
        ("anything", Any, True), (lambda: 0, Callable, True), (3, Callable[[int], int], True),
        ("text", "UnresolvedName", True),
        (Custom(), Custom, True), ({"type": "Custom"}, Custom, True), (None, Custom, True), ("x", Custom, False),
    ],
)
def test_check_value(value, annotation, ok):
    assert check_value(value, annotation) is ok


def test_none_default_accepts_none_whatever_the_annotation():
    assert check_value(None, int, default=None)
    assert not check_value(None, int, default=0)


@pytest.mark.parametrize(
    "annotation, text",
    [
        (int, "an int"), (float, "a number"), (bool, "True or False"), (str, "a string"),
        (Optional[int], "an int or None"), (Literal["a", "b"], "one of ['a', 'b']"),
        (List[int], "a list of int"), (Tuple[float, float], "a list of 2 values (float, float)"),
        (Dict[str, int], "a dict of str to int"), (Sequence[Union[int, str]], "a list of int | str"),
    ],
)
def test_describe(annotation, text):
    assert describe(annotation) == text


def test_string_annotations_are_resolved():
    namespace = {}
    exec(  # a function defined under `from __future__ import annotations`: every annotation is text
        "from __future__ import annotations\n"
        "from typing import Optional\n"
        "def f(a: int, b: Optional[float] = None, c: NotImportedHere = 1): pass\n",
        namespace,
    )
    hints = resolved_annotations(namespace["f"])
    assert hints["a"] is int and hints["b"] == Optional[float]
    assert "c" not in hints  # unresolvable: left out, hence never refused

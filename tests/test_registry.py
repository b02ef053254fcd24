"""registry.build / check_binding: unknown keys and values of the wrong type name the class, key and value."""
from typing import Dict, Literal, Optional, Sequence, Tuple

import pytest

from opentad.registry import ConfigError, Registry, build, check_binding, type_errors

TOYS = Registry("toy")


@TOYS.register_module()
class Head:
    def __init__(self, *, num_classes: int, scale: float = 1.0, use_bias: bool = True, name: str = "h",
                 widths: Sequence[int] = (1,), window: Tuple[int, int] = (3, 3),
                 extra: Optional[Dict[str, float]] = None, mode: Literal["a", "b"] = "a", anything=None):
        self.num_classes, self.scale = num_classes, scale


@TOYS.register_module()
class Child(Head):
    """Forwards its keywords to Head: Head's annotations apply to them."""

    def __init__(self, *, depth: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth


@TOYS.register_module()
class Built:
    """Config keys go through from_config: its annotations are the ones checked."""

    def __init__(self, head):
        self.head = head

    @classmethod
    def from_config(cls, *, head_classes: int):
        return dict(head=Head(num_classes=head_classes))


def test_good_values_build():
    head = build(dict(type="Head", num_classes=3, scale=2, widths=[1, 2], window=[5, 7], extra={"a": 1},
                      mode="b", anything="whatever"), TOYS)
    assert head.num_classes == 3 and head.scale == 2


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("num_classes", "five", "an int"),
        ("num_classes", True, "an int"),
        ("scale", "abc", "a number"),
        ("use_bias", "yes", "True or False"),
        ("name", 3, "a string"),
        ("widths", "12", "a list of int"),
        ("window", [1, 2, 3], "a list of 2 values (int, int)"),
        ("extra", {"a": "x"}, "a dict of str to float or None"),
        ("mode", "c", "one of ['a', 'b']"),
    ],
)
def test_wrong_type_names_class_key_value_and_expected(key, value, expected):
    cfg = dict(type="Head", num_classes=3)
    cfg[key] = value
    with pytest.raises(ConfigError) as info:
        build(cfg, TOYS)
    message = str(info.value)
    assert f"Head.{key} = {value!r} ({type(value).__name__}): expected {expected}" in message
    assert "\n" not in message


def test_forwarded_keywords_use_the_base_annotations():
    assert check_binding(Child, dict(depth=2, num_classes=3)) is None
    assert "Child.num_classes = 'x' (str): expected an int" in check_binding(Child, dict(num_classes="x"))
    assert "Child.depth" in check_binding(Child, dict(depth=1.5, num_classes=3))


def test_from_config_annotations_are_checked():
    assert build(dict(type="Built", head_classes=2), TOYS).head.num_classes == 2
    with pytest.raises(ConfigError, match=r"Built.head_classes = 'two' \(str\): expected an int"):
        build(dict(type="Built", head_classes="two"), TOYS)


def test_type_errors_with_a_config_path():
    errors = type_errors(Head, dict(num_classes="five", scale=1), path="model.rpn_head")
    assert errors == ["model.rpn_head.num_classes = 'five' (str): expected an int (Head)"]


def test_unknown_key_is_still_reported_first():
    message = check_binding(Head, dict(num_clases=3))
    assert "num_clases" in message and "num_classes" in message

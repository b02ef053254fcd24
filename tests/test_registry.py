"""registry.build / check_binding: unknown keys and values of the wrong type name the class, key and value."""
import dataclasses
from typing import Dict, Literal, Optional, Sequence, Tuple

import pytest

from opentad.registry import ConfigError, Registry, build, check_binding, config_keywords

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
    message = check_binding(Head, dict(num_classes="five", scale=1), path="model.rpn_head")
    assert message == "model.rpn_head.num_classes = 'five' (str): expected an int (Head)"


def test_unknown_key_is_still_reported_first():
    message = check_binding(Head, dict(num_clases=3))
    assert "num_clases" in message and "num_classes" in message


HEAD_KEYS = ["num_classes", "scale", "use_bias", "name", "widths", "window", "extra", "mode", "anything"]


def test_unknown_key_message_is_one_line_with_path_valid_keys_and_close_match():
    message = check_binding(Head, dict(num_classes=3, scael=2.0), path="model.rpn_head")
    assert message == (
        f"model.rpn_head: Head got unknown config key(s) ['scael']. Valid keys: {HEAD_KEYS}. Did you mean 'scale'?"
    )
    far = check_binding(Head, dict(num_classes=3, zzz=1))  # nothing close: no suggestion
    assert far == f"Head got unknown config key(s) ['zzz']. Valid keys: {HEAD_KEYS}."


def test_kwargs_forward_to_the_base_and_missing_keys_are_named():
    keys, open_ = config_keywords(Child)
    assert list(keys) == ["depth"] + HEAD_KEYS and not open_
    assert check_binding(Child, dict(depth=2)) == "Child is missing required config key(s) ['num_classes']."
    assert check_binding(Child, dict(depth=2), partial=True) is None
    assert "Valid keys: ['depth', 'num_classes'," in check_binding(Child, dict(dpth=2, num_classes=1))


class Open:
    def __init__(self, *, size: int = 1, **kwargs):
        self.kwargs = kwargs


def test_kwargs_that_reach_no_closed_init_accept_any_key():
    assert config_keywords(Open)[1] is True
    assert check_binding(Open, dict(size=2, whatever=1)) is None
    assert "Open.size" in check_binding(Open, dict(size="2"))


@dataclasses.dataclass
class Section:
    """A config section declared as a dataclass: its fields are the keys and their types."""

    end_epoch: int
    names: Sequence[str] = ()


def test_dataclass_section():
    assert check_binding(Section, dict(end_epoch=3, names=["a"]), path="workflow") is None
    assert check_binding(Section, dict(end_epoch="3"), path="workflow") == (
        "workflow.end_epoch = '3' (str): expected an int (Section)"
    )
    assert check_binding(Section, dict(end_epoc=3), path="workflow") == (
        "workflow: Section got unknown config key(s) ['end_epoc']. Valid keys: ['end_epoch', 'names']. "
        "Did you mean 'end_epoch'?"
    )
    assert check_binding(Section, [1], path="workflow") == "workflow: expected a dict, got list [1]"


@TOYS.register_module()
class Pair:
    """from_config builds the one sub-module; the other keys reach the constructor unchanged."""

    def __init__(self, *, head: Head, scale: float = 1.0, tag: str):
        self.head, self.scale, self.tag = head, scale, tag

    @classmethod
    def from_config(cls, *, head: Dict[str, int], **kwargs):
        return dict(head=build(dict(head, type="Head"), TOYS))


def test_from_config_builds_and_the_rest_passes_through():
    pair = build(dict(type="Pair", head=dict(num_classes=4), scale=2.0, tag="t"), TOYS)
    assert (pair.head.num_classes, pair.scale, pair.tag) == (4, 2.0, "t")
    assert list(config_keywords(Pair)[0]) == ["scale", "tag", "head"]
    assert "Pair.scale = 'x' (str): expected a number" in check_binding(Pair, dict(head={}, tag="t", scale="x"))
    assert check_binding(Pair, dict(head={})) == "Pair is missing required config key(s) ['tag']."
    with pytest.raises(ConfigError, match=r"Pair got unknown config key\(s\) \['sacle'\]"):
        build(dict(type="Pair", head=dict(num_classes=4), tag="t", sacle=2.0), TOYS)

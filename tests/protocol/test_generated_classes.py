"""The generated struct and union classes, written out as plain classes by xdrc.

They behave as the @dataclass(slots=True, repr=False, eq=False) classes they
replace: every field a required parameter, positional or keyword, in wire order;
slots and no __dict__; __eq__ and __repr__ over the fields (XdrStruct's);
class patterns match positionally on __match_args__; unhashable.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from types import ModuleType

import pytest
from virtwire.protocol import xdr
from virtwire.protocol.generated import admin, remote, virnet
from virtwire.protocol.xdr import StructType, UnionType, XdrStruct

UUID = bytes(range(16))
MODULES = (remote, admin, virnet)


def _classes(mod: ModuleType) -> list[type[XdrStruct]]:
    return [t.cls for t in mod.TYPES.values() if isinstance(t, StructType | UnionType)]


def _wire_names(cls: type[XdrStruct]) -> tuple[str, ...]:
    t = cls.xdr_type
    if isinstance(t, UnionType):
        return (t.disc_name, "value")
    return tuple(name for name, _ in t.fields)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_class_has_the_wire_fields_as_slots_match_args_and_required_parameters(mod: ModuleType) -> None:
    classes = _classes(mod)
    assert classes
    for cls in classes:
        names = _wire_names(cls)
        assert cls.__match_args__ == names, cls.__name__
        assert sorted(cls.__slots__) == sorted(names), cls.__name__
        params = list(inspect.signature(cls).parameters.values())
        assert [p.name for p in params] == list(names), cls.__name__
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params), cls.__name__
        assert "__dataclass_fields__" not in vars(cls), cls.__name__  # no @dataclass at import


def test_positional_keyword_and_mixed_construction_agree() -> None:
    positional = remote.remote_nonnull_domain("vm", UUID, 7)
    keyword = remote.remote_nonnull_domain(id=7, name="vm", uuid=UUID)
    mixed = remote.remote_nonnull_domain("vm", id=7, uuid=UUID)
    for value in (positional, keyword, mixed):
        assert (value.name, value.uuid, value.id) == ("vm", UUID, 7)
    assert positional == keyword == mixed


def test_union_construction_takes_the_discriminant_then_the_arm() -> None:
    value = remote.remote_typed_param_value(remote.VIR_TYPED_PARAM_STRING, "text")
    assert (value.type, value.value) == (remote.VIR_TYPED_PARAM_STRING, "text")
    assert value == remote.remote_typed_param_value(value="text", type=remote.VIR_TYPED_PARAM_STRING)


def test_wrong_arguments_are_type_errors() -> None:
    cls = remote.remote_nonnull_domain
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'id'"):
        cls("vm", UUID)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cls()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        cls("vm", UUID, 7, 8)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'uid'"):
        cls("vm", uid=UUID, id=7)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        cls("vm", UUID, 7, name="other")  # type: ignore[misc]


def test_equality_compares_every_field_and_the_class() -> None:
    a = remote.remote_nonnull_network("net", UUID)
    assert a == remote.remote_nonnull_network("net", UUID)
    assert a != remote.remote_nonnull_network("net2", UUID)
    assert a != remote.remote_nonnull_network("net", bytes(16))
    # same fields, another class: not equal (as a dataclass with eq=True compares)
    assert a != remote.remote_nonnull_nwfilter("net", UUID)
    assert a != ("net", UUID)
    nested = remote.remote_domain_get_info_args(remote.remote_nonnull_domain("vm", UUID, 1))
    assert nested == remote.remote_domain_get_info_args(remote.remote_nonnull_domain("vm", UUID, 1))
    assert nested != remote.remote_domain_get_info_args(remote.remote_nonnull_domain("vm", UUID, 2))


def test_repr_names_the_class_and_every_field_in_wire_order() -> None:
    value = remote.remote_domain_get_info_args(remote.remote_nonnull_domain("vm", UUID, -1))
    inner = f"remote_nonnull_domain(name='vm', uuid={UUID!r}, id=-1)"
    assert repr(value) == f"remote_domain_get_info_args(dom={inner})"


def test_slots_only_no_instance_dict_and_unhashable() -> None:
    value = remote.remote_nonnull_domain("vm", UUID, 7)
    assert not hasattr(value, "__dict__")
    with pytest.raises(AttributeError):
        value.nmae = "typo"  # type: ignore[attr-defined]
    value.id = 8  # fields stay assignable
    assert value.id == 8
    with pytest.raises(TypeError, match="unhashable"):
        hash(value)


def test_match_statements_use_the_wire_order() -> None:
    def describe(value: object) -> str:
        match value:
            case remote.remote_nonnull_domain(name, _, -1):
                return f"inactive {name}"
            case remote.remote_nonnull_domain(name, _, domid):
                return f"{name} #{domid}"
            case remote.remote_typed_param_value(remote.VIR_TYPED_PARAM_STRING, str() as text):
                return f"string {text}"
            case remote.remote_typed_param_value(kind, number):
                return f"{kind}: {number}"
        return "other"

    assert describe(remote.remote_nonnull_domain("vm", UUID, -1)) == "inactive vm"
    assert describe(remote.remote_nonnull_domain("vm", UUID, 3)) == "vm #3"
    assert describe(remote.remote_typed_param_value(remote.VIR_TYPED_PARAM_STRING, "s")) == "string s"
    assert describe(remote.remote_typed_param_value(remote.VIR_TYPED_PARAM_INT, 5)) == "1: 5"
    assert describe(remote.remote_nonnull_network("net", UUID)) == "other"


def test_decoded_values_equal_constructed_ones() -> None:
    """The decoders build objects without __init__ (object.__new__ + stores)."""
    built = remote.remote_domain_get_info_ret(1, 2048, 1024, 2, 123456789)
    decoded = remote.remote_domain_get_info_ret.from_bytes(built.to_bytes())
    assert decoded == built and repr(decoded) == repr(built)
    assert not hasattr(decoded, "__dict__")


def test_copy_and_pickle_keep_the_fields() -> None:
    value = remote.remote_domain_get_info_args(remote.remote_nonnull_domain("vm", UUID, 1))
    assert copy.copy(value) == value
    deep = copy.deepcopy(value)
    assert deep == value and deep.dom is not value.dom
    assert pickle.loads(pickle.dumps(value)) == value


def test_replace_changes_the_named_fields_of_a_copy() -> None:
    original = remote.remote_nonnull_domain("vm", UUID, 7)
    changed = xdr.replace(original, id=-1)
    assert changed == remote.remote_nonnull_domain("vm", UUID, -1)
    assert type(changed) is remote.remote_nonnull_domain
    assert original.id == 7  # the original is untouched
    assert xdr.replace(original) == original and xdr.replace(original) is not original
    with pytest.raises(TypeError, match="remote_nonnull_domain has no field domid"):
        xdr.replace(original, domid=1)

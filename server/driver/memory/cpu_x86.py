"""libvirt's x86 CPU model arithmetic: baseline of host CPUs and feature expansion.

A CPU's data is a dict from a CPUID leaf or MSR key to its registers packed in
one integer (see cpumap_data).  A model is its features' data ORed; a host CPU
is its model's data plus its listed features.  The baseline intersects the
CPUs' data, then names it as libvirt's x86Decode does: walking the models from
the newest, each candidate is the model plus features to require or disable,
and the candidate with the fewest (disabled ones weighted) wins, a CPU's own
model name being preferred.  Follows src/cpu/cpu_x86.c of libvirt 9.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Final

from virtwire.protocol.generated import constants as C

from ...errors import report
from . import cpumap_data

Key = tuple[int, ...]
Data = dict[Key, int]

FORCE, REQUIRE, OPTIONAL, DISABLE, FORBID = range(5)  # virCPUFeaturePolicy
HOST_POLICY: Final = -1  # a host CPU's features carry no policy

_VENDOR_LEAF: Final = (0, 0, 0)
_BASE_PENALTY: Final = 2


def cpu_error(code: int, detail: str) -> Exception:
    return report(code, C.VIR_FROM_CPU, detail)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    migratable: bool
    data: Data


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    decode_guest: bool
    vendor: str | None
    data: Data
    removed: tuple[str, ...]


@dataclass(slots=True)
class CPUDef:
    """What virCPUDef carries for a baseline: model, vendor, features with their policies."""

    model: str | None = None
    vendor: str | None = None
    features: list[tuple[str, int]] = field(default_factory=list)
    fallback_forbid: bool = False

    def feature_policy(self, name: str) -> int | None:
        for have, policy in self.features:
            if have == name:
                return policy
        return None

    def update_feature(self, name: str, policy: int) -> None:
        for i, (have, _) in enumerate(self.features):
            if have == name:
                self.features[i] = (name, policy)
                return
        self.features.append((name, policy))


@dataclass(frozen=True, slots=True)
class X86Map:
    vendors: dict[str, Data]  # name → the leaf-0 vendor string bits
    features: tuple[Feature, ...]
    by_feature: dict[str, Feature]
    models: tuple[Model, ...]
    by_model: dict[str, Model]


def _add(into: Data, other: Data) -> None:
    for key, bits in other.items():
        into[key] = into.get(key, 0) | bits


def _subtract(into: Data, other: Data) -> None:
    for key in into:
        if key in other:
            into[key] &= ~other[key]


def _intersect(into: Data, other: Data) -> None:
    for key in into:
        into[key] &= other.get(key, 0)


def _is_empty(data: Data) -> bool:
    return not any(data.values())


def _is_subset(data: Data, subset: Data) -> bool:
    return all(bits == 0 or data.get(key, 0) & bits == bits for key, bits in subset.items())


def _vendor_bits(string: str) -> Data:
    raw = string.encode()
    ebx, edx, ecx = (int.from_bytes(raw[i : i + 4], "little") for i in (0, 4, 8))
    return {_VENDOR_LEAF: (ebx << 32) | (ecx << 64) | (edx << 96)}


@cache
def x86_map() -> X86Map:
    """The map, built on first use (only baseline calls need it)."""
    vendors = {name: _vendor_bits(string) for name, string in cpumap_data.X86_VENDORS}
    features = tuple(Feature(n, mig, dict(items)) for n, mig, items in cpumap_data.X86_FEATURES)
    by_feature = {f.name: f for f in features}
    by_model: dict[str, Model] = {}
    models = []
    for name, _host, guest, ancestor, vendor, names, removed in cpumap_data.X86_MODELS:
        data: Data = {}
        inherited = None
        if ancestor is not None:
            base = by_model[ancestor]
            data.update(base.data)
            inherited = base.vendor
        for feature in names:
            _add(data, by_feature[feature].data)
        model = Model(name, guest, vendor if vendor is not None else inherited, data, removed)
        models.append(model)
        by_model[name] = model
    return X86Map(vendors, features, by_feature, tuple(models), by_model)


def _model_from_cpu(cpu: CPUDef, xmap: X86Map) -> Model:
    """x86ModelFromCPU with policy -1 for a host CPU: its model's data plus every listed feature."""
    base = xmap.by_model.get(cpu.model or "")
    if base is None:
        raise cpu_error(C.VIR_ERR_INTERNAL_ERROR, f"Unknown CPU model {cpu.model}")
    data = dict(base.data)
    for name, _policy in cpu.features:
        feature = xmap.by_feature.get(name)
        if feature is None:
            raise cpu_error(C.VIR_ERR_INTERNAL_ERROR, f"Unknown CPU feature {name}")
        _add(data, feature.data)
    return Model(base.name, base.decode_guest, base.vendor, data, base.removed)


def _take_vendor(data: Data, xmap: X86Map) -> str | None:
    """The vendor whose string the data holds, those bits cleared (x86DataToVendor)."""
    have = data.get(_VENDOR_LEAF)
    if have is None:
        return None
    for name, bits in xmap.vendors.items():
        mask = bits[_VENDOR_LEAF]
        if have & mask == mask:
            data[_VENDOR_LEAF] = have & ~mask
            return name
    return None


def _features_of(cpu: CPUDef, policy: int, data: Data, xmap: X86Map) -> None:
    """Name the map's features the data holds (in map order), taking their bits out of it."""
    for feature in xmap.features:
        if _is_subset(data, feature.data):
            _subtract(data, feature.data)
            cpu.features.append((feature.name, policy))


def _disable_removed(cpu: CPUDef, model: Model) -> None:
    for name in model.removed:
        if cpu.feature_policy(name) is None:
            cpu.features.append((name, DISABLE))


def _candidate(data: Data, model: Model, xmap: X86Map) -> CPUDef:
    """x86DataToCPU for a guest CPU: the model plus what the data has more, minus what it lacks."""
    extra = dict(data)
    missing = dict(model.data)
    cpu = CPUDef(model=model.name, vendor=_take_vendor(extra, xmap))
    _subtract(extra, missing)
    _subtract(missing, data)
    _features_of(cpu, REQUIRE, extra, xmap)
    _features_of(cpu, DISABLE, missing, xmap)
    _disable_removed(cpu, model)
    return cpu


def _weight(cpu: CPUDef) -> tuple[int, int]:
    """(enabled + weighted disabled, weighted disabled): every further disabled feature costs more."""
    enabled = len(cpu.features)
    disabled = 0
    penalty = _BASE_PENALTY
    # libvirt walks only the first `enabled` entries while it shrinks that bound.
    i = 0
    while i < enabled:
        if cpu.features[i][1] == DISABLE:
            enabled -= 1
            disabled += penalty
            penalty += 1
        i += 1
    return enabled + disabled, disabled


def _better(current: CPUDef | None, candidate: CPUDef, model: Model, preferred: list[str]) -> int:
    """x86DecodeUseCandidate: 0 keep current, 1 take candidate, 2 take it and stop."""
    if not model.decode_guest:
        return 0
    is_preferred = candidate.model in preferred
    if is_preferred and len(preferred) == 1:
        return 2
    if current is None:
        return 1
    total, disabled = _weight(candidate)
    total_current, disabled_current = _weight(current)
    if total < total_current or (total == total_current and disabled < disabled_current):
        return 1
    return 1 if is_preferred and disabled < disabled_current else 0


def _decode(data: Data, preferred: list[str], xmap: X86Map) -> CPUDef:
    work = dict(data)
    vendor = _take_vendor(work, xmap)
    best: CPUDef | None = None
    for model in reversed(xmap.models):
        if vendor is not None and model.vendor is not None and vendor != model.vendor:
            continue
        candidate = _candidate(work, model, xmap)
        verdict = _better(best, candidate, model, preferred)
        if verdict:
            best = candidate
            if verdict == 2:
                break
    if best is None:
        raise cpu_error(C.VIR_ERR_INTERNAL_ERROR, "Cannot find suitable CPU model for given data")
    best.vendor = vendor
    return best


def baseline(cpus: list[CPUDef]) -> CPUDef:
    """virCPUx86Baseline of host CPUs (no hypervisor model list, no feature filter, not migratable)."""
    xmap = x86_map()
    base = _model_from_cpu(cpus[0], xmap)
    data = dict(base.data)
    vendor: str | None = None
    output_vendor = True
    if cpus[0].vendor is None:
        output_vendor = False
    elif cpus[0].vendor in xmap.vendors:
        vendor = cpus[0].vendor
    else:
        raise cpu_error(C.VIR_ERR_OPERATION_FAILED, f"Unknown CPU vendor {cpus[0].vendor}")
    names = [cpus[0].model] if cpus[0].model else []
    for cpu in cpus[1:]:
        if cpu.model and cpu.model not in names:
            names.append(cpu.model)
        model = _model_from_cpu(cpu, xmap)
        if cpu.vendor is not None and model.vendor is not None and cpu.vendor != model.vendor:
            detail = f"CPU vendor {model.vendor} of model {model.name} differs from vendor {cpu.vendor}"
            raise cpu_error(C.VIR_ERR_OPERATION_FAILED, detail)
        named = cpu.vendor
        if named is None:
            output_vendor = False
            named = model.vendor
        if named is not None:
            if vendor is None:
                if named not in xmap.vendors:
                    raise cpu_error(C.VIR_ERR_OPERATION_FAILED, f"Unknown CPU vendor {named}")
                vendor = named
            elif vendor != named:
                raise cpu_error(C.VIR_ERR_OPERATION_FAILED, "CPU vendors do not match")
        _intersect(data, model.data)
    if _is_empty(data):
        raise cpu_error(C.VIR_ERR_OPERATION_FAILED, "CPUs are incompatible")
    if vendor is not None:
        _add(data, xmap.vendors[vendor])
    cpu = _decode(data, [n for n in names if n], xmap)
    if len(names) == 1 and cpu.model == names[0]:
        cpu.fallback_forbid = True
    if not output_vendor:
        cpu.vendor = None
    return cpu


def expand_features(cpu: CPUDef) -> None:
    """virCPUx86ExpandFeatures for a guest CPU: every feature of its model, listed."""
    xmap = x86_map()
    model = xmap.by_model.get(cpu.model or "")
    if model is None:
        raise cpu_error(C.VIR_ERR_INTERNAL_ERROR, f"unknown CPU model {cpu.model}")
    expanded = CPUDef(model=cpu.model, vendor=cpu.vendor, fallback_forbid=cpu.fallback_forbid)
    _features_of(expanded, REQUIRE, dict(model.data), xmap)
    for name, policy in cpu.features:
        if policy in (REQUIRE, DISABLE):
            expanded.update_feature(name, policy)
    _disable_removed(expanded, model)
    cpu.features = expanded.features

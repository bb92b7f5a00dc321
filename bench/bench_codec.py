"""Codec benchmark: the generated XDR codec against a naive xdrlib3 reference.

Three payloads, each encoded and decoded (a round trip is one operation):

  (a) DOMAIN_GET_INFO reply                      remote_domain_get_info_ret
  (b) CONNECT_LIST_ALL_DOMAINS reply, 1,000 doms remote_connect_list_all_domains_ret
  (c) DOMAIN_GET_JOB_STATS reply, 25 params      remote_domain_get_job_stats_ret

The reference packs and unpacks the same structs field by field with xdrlib3's
Packer/Unpacker and builds the same generated objects, so both sides produce
identical bytes and equal values (checked before timing).  Also reported: the
whole-packet path (decode_message/encode_message, header and dispatch included).

Run:  .venv/bin/python bench/bench_codec.py [--seconds 0.5]
This is a measurement, not a test: it prints ops/s and the ratio; target >= 3x on (b) and (c).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xdrlib3
from virtwire.protocol.framing import Header, MessageStatus, MessageType
from virtwire.protocol.generated import constants as C
from virtwire.protocol.generated import remote
from virtwire.protocol.message import Message, decode_message, encode_message
from virtwire.protocol.typedparams import dict_to_params
from virtwire.protocol.xdr import XdrStruct

# ---------------------------------------------------------------- sample values


def sample_info() -> remote.remote_domain_get_info_ret:
    return remote.remote_domain_get_info_ret(
        state=1, maxMem=8388608, memory=2097152, nrVirtCpu=2, cpuTime=1795687720529723000
    )


def sample_domains(count: int = 1000) -> remote.remote_connect_list_all_domains_ret:
    domains = [
        remote.remote_nonnull_domain(
            name=f"guest-{i:04d}", uuid=uuid.UUID(int=i + 1).bytes, id=i if i % 3 else -1
        )
        for i in range(count)
    ]
    return remote.remote_connect_list_all_domains_ret(domains=domains, ret=count)


def sample_job_stats() -> remote.remote_domain_get_job_stats_ret:
    names = [
        "time_elapsed",
        "time_elapsed_net",
        "time_remaining",
        "downtime",
        "downtime_net",
        "setup_time",
        "data_total",
        "data_processed",
        "data_remaining",
        "memory_total",
        "memory_processed",
        "memory_remaining",
        "memory_constant",
        "memory_normal",
        "memory_normal_bytes",
        "memory_bps",
        "memory_dirty_rate",
        "memory_page_size",
        "memory_iteration",
        "memory_postcopy_requests",
        "disk_total",
        "disk_processed",
        "disk_remaining",
        "disk_bps",
    ]
    stats: dict[str, object] = {"operation": C.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT}
    stats.update({name: (i + 1) * 1_000_003 for i, name in enumerate(names)})
    params = dict_to_params(stats)
    assert len(params) == 25
    return remote.remote_domain_get_job_stats_ret(type=C.VIR_DOMAIN_JOB_UNBOUNDED, params=params)


# ---------------------------------------------------------------- naive reference


def naive_pack_info(v: remote.remote_domain_get_info_ret) -> bytes:
    p = xdrlib3.Packer()
    p.pack_uint(v.state)
    p.pack_uhyper(v.maxMem)
    p.pack_uhyper(v.memory)
    p.pack_uint(v.nrVirtCpu)
    p.pack_uhyper(v.cpuTime)
    return p.get_buffer()


def naive_unpack_info(data: bytes) -> remote.remote_domain_get_info_ret:
    u = xdrlib3.Unpacker(data)
    # positional construction: the cheapest way to build the object by hand
    v = remote.remote_domain_get_info_ret(
        u.unpack_uint(), u.unpack_uhyper(), u.unpack_uhyper(), u.unpack_uint(), u.unpack_uhyper()
    )
    u.done()
    return v


def _pack_domain(p: xdrlib3.Packer, d: remote.remote_nonnull_domain) -> None:
    p.pack_string(d.name.encode())
    p.pack_fopaque(16, d.uuid)
    p.pack_int(d.id)


def _unpack_domain(u: xdrlib3.Unpacker) -> remote.remote_nonnull_domain:
    return remote.remote_nonnull_domain(u.unpack_string().decode(), u.unpack_fopaque(16), u.unpack_int())


def naive_pack_domains(v: remote.remote_connect_list_all_domains_ret) -> bytes:
    p = xdrlib3.Packer()
    p.pack_uint(len(v.domains))
    for d in v.domains:
        _pack_domain(p, d)
    p.pack_uint(v.ret)
    return p.get_buffer()


def naive_unpack_domains(data: bytes) -> remote.remote_connect_list_all_domains_ret:
    u = xdrlib3.Unpacker(data)
    count = u.unpack_uint()
    if count > remote.REMOTE_DOMAIN_LIST_MAX:
        raise ValueError("too many domains")
    domains = [_unpack_domain(u) for _ in range(count)]
    v = remote.remote_connect_list_all_domains_ret(domains, u.unpack_uint())
    u.done()
    return v


_PACK_VALUE: dict[int, Callable[[xdrlib3.Packer, Any], None]] = {
    C.VIR_TYPED_PARAM_INT: lambda p, x: p.pack_int(x),
    C.VIR_TYPED_PARAM_UINT: lambda p, x: p.pack_uint(x),
    C.VIR_TYPED_PARAM_LLONG: lambda p, x: p.pack_hyper(x),
    C.VIR_TYPED_PARAM_ULLONG: lambda p, x: p.pack_uhyper(x),
    C.VIR_TYPED_PARAM_DOUBLE: lambda p, x: p.pack_double(x),
    C.VIR_TYPED_PARAM_BOOLEAN: lambda p, x: p.pack_int(x),
    C.VIR_TYPED_PARAM_STRING: lambda p, x: p.pack_string(str(x).encode()),
}
_UNPACK_VALUE: dict[int, Callable[[xdrlib3.Unpacker], int | float | str]] = {
    C.VIR_TYPED_PARAM_INT: lambda u: u.unpack_int(),
    C.VIR_TYPED_PARAM_UINT: lambda u: u.unpack_uint(),
    C.VIR_TYPED_PARAM_LLONG: lambda u: u.unpack_hyper(),
    C.VIR_TYPED_PARAM_ULLONG: lambda u: u.unpack_uhyper(),
    C.VIR_TYPED_PARAM_DOUBLE: lambda u: u.unpack_double(),
    C.VIR_TYPED_PARAM_BOOLEAN: lambda u: u.unpack_int(),
    C.VIR_TYPED_PARAM_STRING: lambda u: u.unpack_string().decode(),
}


def naive_pack_job_stats(v: remote.remote_domain_get_job_stats_ret) -> bytes:
    p = xdrlib3.Packer()
    p.pack_int(v.type)
    p.pack_uint(len(v.params))
    for param in v.params:
        p.pack_string(param.field.encode())
        p.pack_int(param.value.type)
        _PACK_VALUE[param.value.type](p, param.value.value)
    return p.get_buffer()


def naive_unpack_job_stats(data: bytes) -> remote.remote_domain_get_job_stats_ret:
    u = xdrlib3.Unpacker(data)
    job_type = u.unpack_int()
    count = u.unpack_uint()
    if count > remote.REMOTE_DOMAIN_JOB_STATS_MAX:
        raise ValueError("too many params")
    params = []
    for _ in range(count):
        field = u.unpack_string().decode()
        type_code = u.unpack_int()
        value = _UNPACK_VALUE[type_code](u)
        params.append(remote.remote_typed_param(field, remote.remote_typed_param_value(type_code, value)))
    u.done()
    return remote.remote_domain_get_job_stats_ret(job_type, params)


# ---------------------------------------------------------------- harness


@dataclass
class Case:
    label: str
    generated: Callable[[], object]
    naive: Callable[[], object]
    message: Callable[[], object]


def make_case(
    label: str,
    value: XdrStruct,
    procedure: int,
    pack: Callable[[Any], bytes],
    unpack: Callable[[bytes], XdrStruct],
) -> Case:
    cls = type(value)
    data = value.to_bytes()
    # Both codecs must agree before their speed means anything.
    assert pack(value) == data, label
    assert unpack(data) == value == cls.from_bytes(data), label
    header = Header(
        remote.REMOTE_PROGRAM, 1, procedure, MessageType.VIR_NET_REPLY, 7, MessageStatus.VIR_NET_OK
    )
    message = Message(header, value)
    assert decode_message(encode_message(message)) == message

    def generated() -> object:
        return cls.from_bytes(value.to_bytes())

    def naive() -> object:
        return unpack(pack(value))

    def whole() -> object:
        return decode_message(encode_message(message))

    return Case(label, generated, naive, whole)


def _batch_size(operation: Callable[[], object]) -> int:
    """Operations per timed batch: enough for ~10 ms, so timer overhead is negligible."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            operation()
        if time.perf_counter() - start > 0.01:
            return batch
        batch *= 2


def rates(operations: list[Callable[[], object]], seconds: float, rounds: int = 20) -> list[float]:
    """Best ops/s of each operation over `rounds` rounds that alternate between them,
    so a burst of load from other processes hits every contender alike."""
    batches = [_batch_size(op) for op in operations]
    best = [0.0] * len(operations)
    for _ in range(rounds):
        for i, (operation, batch) in enumerate(zip(operations, batches, strict=True)):
            runs = 0
            start = time.perf_counter()
            deadline = start + seconds / rounds
            while time.perf_counter() < deadline:
                for _ in range(batch):
                    operation()
                runs += batch
            best[i] = max(best[i], runs / (time.perf_counter() - start))
    return best


def make_cases() -> list[Case]:
    procs = remote.remote_procedure
    return [
        make_case(
            "(a) DOMAIN_GET_INFO reply",
            sample_info(),
            procs.REMOTE_PROC_DOMAIN_GET_INFO,
            naive_pack_info,
            naive_unpack_info,
        ),
        make_case(
            "(b) LIST_ALL_DOMAINS reply, 1000 domains",
            sample_domains(),
            procs.REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS,
            naive_pack_domains,
            naive_unpack_domains,
        ),
        make_case(
            "(c) GET_JOB_STATS reply, 25 params",
            sample_job_stats(),
            procs.REMOTE_PROC_DOMAIN_GET_JOB_STATS,
            naive_pack_job_stats,
            naive_unpack_job_stats,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    print(
        f"{'payload':44} {'generated ops/s':>16} {'naive ops/s':>12} {'ratio':>7} {'whole packet ops/s':>19}"
    )
    for case in make_cases():
        generated, naive, whole = rates([case.generated, case.naive, case.message], args.seconds)
        print(f"{case.label:44} {generated:16.0f} {naive:12.0f} {generated / naive:6.2f}x {whole:19.0f}")


if __name__ == "__main__":
    main()

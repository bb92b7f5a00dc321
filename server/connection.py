"""One client connection: read loop, calls, a single writer, keepalive.

Every task of a connection lives in its nursery, so nothing outlives it:

* the reader splits the byte stream into packets, answers keepalive PINGs,
  rejects bad headers, and starts one task per call (or answers it itself when
  its handler never waits).  What the server holds for one client is bounded,
  as in libvirtd, where a request slot is held until its reply is written: calls in
  flight plus packets not yet written stay below ``max_client_requests``, and
  unwritten bytes below ``max_unsent_bytes``.  Past either bound the reader
  stops reading, so a client that does not read its replies is held back by
  TCP instead of filling our memory.  While it waits for its own calls the
  keepalive countdown is held, because the silence is ours, not the peer's
  (not while it waits for the client to take its replies);
* fairness: the reader yields to other connections after each reply it
  produced that is larger than ``_TURN_BYTES`` and every ``_TURN_PACKETS``
  packets, so one client's burst of big answers cannot stall the others;
* packets are written whole and never interleave: when nothing is waiting to
  be written, the task that has a packet writes it at once without waiting
  (most replies: this saves a hand-over per call); otherwise it goes through
  one bounded channel to the writer task, started the first time it is needed.
  The writer joins small queued packets into one write (at most
  ``_BATCH_BYTES``), so no large packet is ever copied into a batch;
* the keepalive task pings a client that asked for it (feature 10) after
  ``interval`` seconds of silence and drops it after ``count`` unanswered pings.
* parking (server/parking.py): a plain-socket connection whose reader waits
  between packets with nothing in flight is parked by the daemon's parking
  task after a short silence: ``run`` returns True and the connection has no
  task (an idle client then costs its objects, not a task, a nursery and their
  cancel scopes); it is run again when the client sends something, when a
  packet cannot be written straight away, or when it must end.  Events and
  keepalive pings to a parked connection are written straight to the socket.

Endings: EOF cancels calls in flight; CONNECT_CLOSE and server shutdown stop
reading, let calls in flight finish, flush, then close; keepalive timeout,
event overflow, a bad length word or a write error abort at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from virtwire.protocol import errors as E
from virtwire.protocol import wire
from virtwire.protocol.errors import ProtocolError, libvirtError, to_remote_error
from virtwire.protocol.framing import PacketDecoder
from virtwire.protocol.generated import keepalive as K
from virtwire.protocol.generated.virnet import virNetMessageStatus, virNetMessageType

from . import fdpass
from .access import CallAccess
from .auth import ConnectionAuth
from .dispatch import Handler, Route, run_call
from .driver.base import ConnectionContext
from .events import EventFamily, EventSubscriber
from .identity import identify
from .streamio import StreamIO, close_stream
from .streams import STREAM, STREAM_HOLE, StreamTable

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)

_HEADER = wire.PACKET_HEADER  # length, program, version, procedure, type, serial, status
_HEADER_SIZE = wire.HEADER_SIZE
_CALL = virNetMessageType.VIR_NET_CALL
_CALL_WITH_FDS = virNetMessageType.VIR_NET_CALL_WITH_FDS
_REPLY_WITH_FDS = int(virNetMessageType.VIR_NET_REPLY_WITH_FDS)
_NFDS = struct.Struct(">I")  # a *_WITH_FDS payload starts with the descriptor count
_REPLY = int(virNetMessageType.VIR_NET_REPLY)
_MESSAGE = virNetMessageType.VIR_NET_MESSAGE
_OK = virNetMessageStatus.VIR_NET_OK
_ERROR = int(virNetMessageStatus.VIR_NET_ERROR)
_KEEPALIVE = K.KEEPALIVE_PROGRAM
_KEEPALIVE_VERSION = K.KEEPALIVE_PROTOCOL_VERSION
_PING = K.keepalive_procedure.KEEPALIVE_PROC_PING
_RECV_SIZE = 256 * 1024
# The writer joins queued packets into one write up to this size; bigger ones go alone.
_BATCH_BYTES = 64 * 1024
# The reader yields after a reply this large, and after this many packets in a row.
_TURN_BYTES = 64 * 1024
_TURN_PACKETS = 32


PING_PACKET = wire.PING_PACKET
PONG_PACKET = wire.PONG_PACKET


def reply_packet(
    program: int, version: int, procedure: int, serial: int, status: int, payload: bytes
) -> bytes:
    """A REPLY packet echoing the call's program, version, procedure and serial."""
    return (
        _HEADER.pack(_HEADER_SIZE + len(payload), program, version, procedure, _REPLY, serial, status)
        + payload
    )


def error_packet(program: int, version: int, procedure: int, serial: int, error: libvirtError) -> bytes:
    return reply_packet(program, version, procedure, serial, _ERROR, to_remote_error(error).to_bytes())


class _End:
    """Writer sentinel: everything before it is flushed; then the connection ends."""


_END = _End()


class FdReply(bytes):
    """A REPLY_WITH_FDS packet and the descriptors that follow it (ours to close once sent)."""

    fds: list[int]

    def __new__(cls, data: bytes, fds: list[int]) -> FdReply:
        packet = super().__new__(cls, data)
        packet.fds = fds
        return packet


def fd_reply_packet(
    program: int, version: int, procedure: int, serial: int, payload: bytes, fds: list[int]
) -> FdReply:
    """The REPLY_WITH_FDS of a call whose handler passes descriptors back."""
    body = _NFDS.pack(len(fds)) + payload
    header = _HEADER.pack(_HEADER_SIZE + len(body), program, version, procedure, _REPLY_WITH_FDS, serial, _OK)
    return FdReply(header + body, fds)


class Connection(EventSubscriber):
    """A client connection, served by ``run``."""

    # More than 30 attributes: without slots CPython gives each connection a dict
    # of its own (keys are shared only up to 30), about 1.5 KiB per idle client.
    __slots__ = (
        "_access", "_calls_done", "_calls_in_flight", "_closing", "_conn_scope", "_eof", "_io",
        "_ka_last_ping", "_ka_unanswered", "_keepalive", "_keepalive_task", "_max_owed", "_max_unsent_bytes",
        "_metrics", "_nursery", "_outbox", "_outbox_made", "_outbox_rx", "_park_requested", "_program",
        "_read_scope", "_reading_paused", "_resumed", "_room", "_stopping", "_turn_packets", "_unwritten",
        "_unwritten_bytes", "_version", "_writer_started", "_written", "auth", "closed_reason",
        "connected_at", "counted", "ctx", "idle_waiting", "keepalive_deadline", "keepalive_queued", "last_rx",
        "opened", "park_step", "parked", "procedures", "readonly_socket", "service", "stream", "streams",
    )

    def __init__(
        self,
        service: Service,
        stream: trio.abc.Stream | socket.socket,
        *,
        transport: str,
        peer: str,
        readonly_socket: bool,
    ) -> None:
        self.service = service
        self.stream = stream
        self.readonly_socket = readonly_socket
        self.ctx = ConnectionContext(
            conn_id=service.next_connection_id(), peer=peer, transport=transport, readonly=readonly_socket
        )
        self.ctx.identity = identify(stream, transport, readonly_socket)
        self.auth = ConnectionAuth(self)
        self.opened = False
        program = service.program
        self._program = program.number
        self._version = program.version
        self.procedures: Any = program.connection_procedures(self)
        self.connected_at = time.time()  # virt-admin's "connected since"
        self._metrics = service.metrics
        self._io = StreamIO(stream)
        cfg = service.config
        # The writer's queue, made with the writer: most connections never need one,
        # and an idle connection's cost is mostly such buffers.
        self._outbox: trio.MemorySendChannel[bytes | _End]
        self._outbox_rx: trio.MemoryReceiveChannel[bytes | _End]
        self._outbox_made = False
        self._unwritten = 0  # items handed to the writer and not yet written
        self._unwritten_bytes = 0  # their size
        self._max_owed = cfg.max_client_requests
        self._max_unsent_bytes = cfg.max_unsent_bytes
        self._room: trio.Event | None = None  # set when the paused reader may go on
        self._turn_packets = 0
        self.last_rx = trio.current_time()  # when the client last sent something
        self._reading_paused = False
        # Keepalive (feature 10): its state lives here, not in the keepalive task, so
        # that the parking task can go on pinging while the connection is parked.
        self._keepalive = False  # the client asked for it
        self._keepalive_task = False  # the connection's keepalive task is running
        self.keepalive_deadline: float | None = None  # the next check
        self.keepalive_queued = False  # in the parking task's timer heap
        self._ka_unanswered = 0
        self._ka_last_ping = -1.0
        # Parking (server/parking.py): the reader's scope exists while it reads.
        self._read_scope: trio.CancelScope | None = None
        self._stopping = False  # stop_reading was called
        self._park_requested = False
        self._resumed = False  # served before: a parked connection woke up
        self.idle_waiting = False  # the reader waits between packets with nothing in flight
        self.parked = False
        self.park_step = 0  # which PARK_AFTER delay applies (server/parking.py)
        self.counted = False  # holds one of the service's accepted clients (given back at the end)
        self._conn_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._writer_started = False  # started on the first packet that cannot be written at once
        self._calls_in_flight = 0
        self._calls_done: trio.Event | None = None  # set when the last call in flight ends
        self._eof = False
        self._closing = False
        self.closed_reason: str | None = None
        # Streams opened by calls (server/streams.py); hooks marked "streams:" below.
        self.streams = StreamTable(self)
        self._access: CallAccess | None = None  # made at the first call when a policy is set
        self._written: trio.Event | None = None  # set when the writer has written everything queued

    # --- what the rest of the server sees -------------------------------------------

    @property
    def readonly(self) -> bool:
        return self.ctx.readonly

    @property
    def access(self) -> CallAccess | None:
        if self._access is None:
            policy = self.service.config.access_policy
            if policy is None:
                return None
            self._access = CallAccess(
                policy,
                self.ctx.identity.attributes,
                self.service.driver.access_objects,
                self.service.list_for_access,
                self.service.driver.access_name,
            )
        return self._access

    @property
    def authenticated(self) -> bool:
        return self.auth.authenticated

    def identity_changed(self) -> None:
        """SASL named the user: access checks start over with the new identity."""
        self._access = None

    @property
    def calls_in_flight(self) -> int:
        """Calls running in tasks of their own (those answered in the reader are never counted)."""
        return self._calls_in_flight

    def connection_handler(self, name: str) -> Handler:
        handler: Handler = getattr(self.procedures, name.lower())
        return handler

    def deliver(self, packet: bytes) -> None:
        """Queue an event without blocking; a subscriber that fell behind is dropped."""
        queued = self._push(packet)
        if self._metrics is not None:
            if queued:
                self._metrics.events_sent += 1
            else:
                self._metrics.events_dropped += 1

    def _push(self, packet: bytes) -> bool:
        """Write or queue a packet without blocking; False when it is lost (overflow, closed)."""
        if self._write_now(packet):
            return True
        self._start_writer()
        try:
            self._outbox.send_nowait(packet)
        except trio.WouldBlock:
            self.abort(f"event queue overflow ({self.service.config.event_queue_size} packets pending)")
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        self._unwritten += 1
        self._unwritten_bytes += len(packet)
        return True

    def may_receive(self, family: EventFamily, msg: Any) -> bool:
        access = self.access
        return access is None or access.may_see_event(family.access_kind, msg)

    def stop_reading(self) -> None:
        """Finish calls in flight, flush, close (CONNECT_CLOSE, server shutdown)."""
        self._stopping = True
        if self._read_scope is not None:
            self._read_scope.cancel()
        self._wake()

    def abort(self, reason: str) -> None:
        """Drop the connection now, cancelling everything it runs."""
        if self.closed_reason is None:
            self.closed_reason = reason
            log.warning("client %s (%s): dropping connection: %s", self.ctx.conn_id, self.ctx.peer, reason)
        if self._conn_scope is not None:
            self._conn_scope.cancel()
        self._wake()

    def start_keepalive(self) -> None:
        """Feature 10 was requested: ping this client when it goes quiet."""
        cfg = self.service.config
        if self._keepalive or cfg.keepalive_interval <= 0:
            return
        self._keepalive = True
        self.keepalive_deadline = self.last_rx + cfg.keepalive_interval
        self._start_keepalive_task()

    def _start_keepalive_task(self) -> None:
        if self._nursery is not None and not self._keepalive_task:
            self._keepalive_task = True
            self._nursery.start_soon(self._keepalive_loop)

    # --- parking (server/parking.py) ----------------------------------------------------

    @property
    def fileno(self) -> int:
        """The socket's descriptor (-1 for streams that are not plain sockets)."""
        return self._io.fd

    def may_park(self) -> bool:
        """Nothing in flight: the connection can be left without a task."""
        return (
            self._io.direct
            and not self._calls_in_flight
            and not self._unwritten
            and not self.streams
            and not self._io.received_fds
            and self.closed_reason is None
            and not (self._closing or self._stopping or self._eof)
        )

    def request_park(self) -> bool:
        """The parking task's sweep: park if the reader still waits with nothing in
        flight (True: it will).

        Only while the reader waits between packets (``idle_waiting``): nothing is
        half-read there, so interrupting the wait loses nothing.
        """
        if self.idle_waiting and self._read_scope is not None and self.may_park():
            self._park_requested = True
            self._read_scope.cancel()
            return True
        return False

    def _wake(self) -> None:
        if self.parked and self.service.parking is not None:
            self.service.parking.wake(self)

    # --- life ---------------------------------------------------------------------------

    async def run(self) -> bool:
        """Serve until the connection ends (False), or until it is parked (True).

        Parked, it has no task: the parking task calls ``Service.resume``, which
        runs this again, when the client sends something or the connection has
        packets to write or must end.
        """
        if not self._resumed:
            log.debug("client %s connected from %s (%s)", self.ctx.conn_id, self.ctx.peer, self.ctx.transport)
        parked = False
        try:
            async with trio.open_nursery() as nursery:
                self._conn_scope = nursery.cancel_scope
                self._nursery = nursery
                if self.closed_reason is not None:  # dropped while parked
                    nursery.cancel_scope.cancel()
                    return False
                if self._unwritten:  # queued while parked (a packet the socket did not take whole)
                    self._start_writer()
                if self._keepalive:
                    self._start_keepalive_task()
                while True:
                    scope = self._read_scope = trio.CancelScope()
                    if self._stopping:
                        scope.cancel()
                    with scope:
                        await self._read_loop()
                    self._read_scope = None
                    self.idle_waiting = False
                    if not self._park_requested:
                        break
                    self._park_requested = False
                    if self.may_park():
                        # Its other tasks (writer, keepalive) wait for nothing: they end here.
                        parked = True
                        nursery.cancel_scope.cancel()
                        return True
                    # Something came in since the sweep asked: go on reading.
                    self._resumed = True
                if self._eof:
                    nursery.cancel_scope.cancel()  # nobody is left to read the answers
                    return False
                if self._calls_in_flight:
                    self._calls_done = trio.Event()
                    await self._calls_done.wait()
                if self._writer_started:
                    self._unwritten += 1  # from here on the writer alone writes
                    await self._outbox.send(_END)  # the writer flushes, then ends the connection
                else:
                    nursery.cancel_scope.cancel()  # everything is written; stop the keepalive
        finally:
            self._nursery = self._conn_scope = self._read_scope = None
            self._writer_started = self._keepalive_task = False
            self.idle_waiting = False
            if parked:
                self._resumed = True
                if self._outbox_made and not self._unwritten:
                    # An empty queue is not kept while parked (the writer makes a new one).
                    self._outbox_made = False
                    del self._outbox, self._outbox_rx
            else:
                with trio.CancelScope(shield=True):
                    await self._teardown()
        return parked

    async def _teardown(self) -> None:
        fdpass.close_all(self._io.received_fds)
        if self._outbox_made:
            while True:
                try:
                    item = self._outbox_rx.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                if type(item) is FdReply:
                    fdpass.close_all(item.fds)
        self.auth.release()
        self.streams.close_all()  # streams: the client is gone, abort what is open
        self.service.bus.drop_owner(self)
        if self.opened:
            self.opened = False
            await self.service.driver.connection_closed(self.ctx)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await close_stream(self.stream)
        log.debug("client %s closed", self.ctx.conn_id)

    # --- reading ------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        decoder = PacketDecoder(sender="client")
        io = self._io
        held: bytes | None = None  # a CALL_WITH_FDS waiting for its descriptors
        nfds = 0
        # A new client sends its first call right after connecting: it is most
        # likely here already, so the first read does not wait for readability.
        wait_first = self._resumed
        direct = io.direct
        while True:
            try:
                if wait_first and direct:
                    # Between packets, an idle client's task waits here, right on the
                    # descriptor: a coroutine frame less per idle connection than
                    # waiting inside receive().  Here the parking task may park it.
                    self.idle_waiting = True  # may_park() tells whether anything is in flight
                    await trio.lowlevel.wait_readable(io.fd)
                    self.idle_waiting = False
                    if self._park_requested:
                        # The sweep asked after the wait had already ended: take its
                        # cancellation here, before anything is read.
                        await trio.lowlevel.checkpoint()
                    data = await io.receive(_RECV_SIZE, waited=True)
                else:
                    data = await io.receive(_RECV_SIZE, wait_first)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self._eof = True
                if decoder.in_packet:
                    log.info("client %s: connection closed mid-packet", self.ctx.conn_id)
                return
            self.last_rx = trio.current_time()
            try:
                decoder.feed(data)
                while True:
                    if held is not None:
                        if decoder.skipping:
                            break  # its descriptors are still on their way
                        packet, fds = held, self._received_fds(nfds)
                        held = None
                        if fds is None:
                            return
                        await self._on_packet(packet, fds)
                    else:
                        incoming = decoder.next_packet()
                        if incoming is None:
                            break
                        if incoming[19] == _CALL_WITH_FDS and incoming[16:19] == b"\0\0\0":
                            nfds = self._fds_owed(incoming)
                            if nfds < 0:
                                return
                            held = incoming
                            decoder.skip(nfds)
                            continue
                        await self._on_packet(incoming)
                    if self._closing:
                        return
                if held is None and io.received_fds:
                    # Descriptors with no CALL_WITH_FDS to go to: libvirtd's plain
                    # read would have dropped them (the kernel closes them).
                    fdpass.close_all(io.received_fds)
                wait_first = not decoder.in_packet
            except ProtocolError as exc:
                # A bad length word: the stream has no resync point. libvirtd hangs up.
                self.abort(f"protocol error: {exc}")
                return

    def _fds_owed(self, packet: bytes) -> int:
        """How many descriptors follow a CALL_WITH_FDS; -1 when the connection must
        end, as libvirtd ends it (virNetServerClientDispatchRead): a count it cannot
        decode or over its maximum, or a socket that cannot carry descriptors."""
        if len(packet) < _HEADER_SIZE + 4:
            reason = "Unable to decode number of FDs"
        elif not self._io.passes_fds:
            reason = "Receiving file descriptors is not supported on this socket"
        else:
            (nfds,) = _NFDS.unpack_from(packet, _HEADER_SIZE)
            if nfds <= wire.NUM_FDS_MAX:
                return int(nfds)
            reason = f"Received too many FDs {nfds}, expected {wire.NUM_FDS_MAX} maximum"
        self.abort(reason)
        return -1

    def _received_fds(self, nfds: int) -> list[int] | None:
        """The descriptors of the CALL_WITH_FDS whose carrier bytes are all in."""
        pool = self._io.received_fds
        if len(pool) < nfds:
            # A carrier byte without its descriptor (virSocketRecvFD: EBADMSG).
            fdpass.close_all(pool)
            self.abort("Failed to recv file descriptor: Bad message")
            return None
        fds = pool[:nfds]
        del pool[:nfds]
        return fds

    def _owes_too_much(self) -> bool:
        return (
            self._calls_in_flight + self._unwritten >= self._max_owed
            or self._unwritten_bytes > self._max_unsent_bytes
        )

    def _wake_reader(self) -> None:
        if self._room is not None and not self._owes_too_much():
            self._room.set()
            self._room = None

    async def _wait_for_room(self) -> None:
        """Hold the next packet while this client owes too much (see the module doc)."""
        try:
            while self._owes_too_much():
                # Waiting for our own calls is our silence (keepalive holds); waiting
                # for the client to take its replies is the client's.
                self._reading_paused = not self._unwritten
                self._room = trio.Event()
                await self._room.wait()
        finally:
            self._reading_paused = False
            self._room = None

    async def _on_packet(self, packet: bytes, fds: list[int] | None = None) -> None:
        """One packet; `fds`: it is a CALL_WITH_FDS and these came with it (the call owns them)."""
        if fds is not None:
            try:
                await self._on_call_with_fds(packet, fds)
            finally:
                fdpass.close_all(fds)  # those no call took (an error before the call ran)
            return
        if self._owes_too_much():
            await self._wait_for_room()
        self._turn_packets += 1
        if self._turn_packets >= _TURN_PACKETS:
            self._turn_packets = 0
            await trio.lowlevel.checkpoint()  # let other connections have a turn
        _, program, version, procedure, mtype, serial, status = _HEADER.unpack_from(packet)
        if program == _KEEPALIVE and version == _KEEPALIVE_VERSION and mtype == _MESSAGE:
            if procedure == _PING:
                await self._queue(PONG_PACKET)
            return  # PONG (any packet already reset the countdown) or an unknown one: ignored
        if program != self._program or version != self._version:
            await self._reply_error(packet, E.unknown_program(program, version))
            return
        if mtype in (STREAM, STREAM_HOLE):  # streams: data of an open stream
            await self.streams.incoming(mtype, procedure, serial, status, memoryview(packet)[_HEADER_SIZE:])
            return
        if mtype != _CALL:
            # libvirtd drops stray STREAM/REPLY/MESSAGE packets without an answer.
            log.info("client %s: ignoring a packet of type %d (serial %d)", self.ctx.conn_id, mtype, serial)
            return
        try:
            route = self._route(procedure, status)
        except libvirtError as refused:
            await self._reply_error(packet, refused)
            return
        if route.inline:
            # Never waits (see driver.base.nonblocking): answered right here, without
            # a task of its own; until written, its reply holds a request slot.
            reply = await self._answer(route, packet, procedure, serial)
            await self._queue(reply)
            self.streams.reply_sent(procedure, serial)  # streams: a stream the call opened starts
            if len(reply) > _TURN_BYTES:
                self._turn_packets = 0
                await trio.lowlevel.checkpoint()  # a big answer is a whole turn
            return
        assert self._nursery is not None
        self._calls_in_flight += 1
        self._nursery.start_soon(self._run_call, route, packet, procedure, serial)

    async def _on_call_with_fds(self, packet: bytes, fds: list[int]) -> None:
        """A CALL_WITH_FDS: the checks of a CALL, then its call with the descriptors."""
        if self._owes_too_much():
            await self._wait_for_room()
        _, program, version, procedure, _, serial, status = _HEADER.unpack_from(packet)
        if program != self._program or version != self._version:
            await self._reply_error(packet, E.unknown_program(program, version))
            return
        try:
            route = self._route(procedure, status)
        except libvirtError as refused:
            await self._reply_error(packet, refused)
            return
        # The count word is not part of the arguments.
        body = packet[:_HEADER_SIZE] + packet[_HEADER_SIZE + 4 :]
        incoming = list(fds)
        fds.clear()  # the call owns them now (fdpass.serving closes what it leaves)
        assert self._nursery is not None
        self._calls_in_flight += 1
        self._nursery.start_soon(self._run_call, route, body, procedure, serial, incoming)

    def _write_now(self, packet: bytes) -> bool:
        """Write ``packet`` from the calling task when nothing is waiting to be written.

        Saves the hand-over to the writer task (a scheduler round trip per reply).
        Safe because it never awaits: the whole packet is either written here or,
        when the socket takes only part, its rest is queued ahead of everything
        else, so packets never interleave.  False: the caller must queue it.
        """
        if self._unwritten or not self._io.direct or type(packet) is FdReply:
            return False
        try:
            written = self._io.send_now(packet)
        except OSError as exc:
            self.abort(f"write failed: {exc}")
            return True
        if written < len(packet):
            rest = packet[written:]
            self._start_writer()
            self._outbox.send_nowait(rest)  # the queue is empty: it fits
            self._unwritten += 1
            self._unwritten_bytes += len(rest)
        return True

    def _start_writer(self) -> None:
        """Make the writer's queue (once) and start the writer (once, in the nursery)."""
        if self._writer_started:
            return
        if not self._outbox_made:
            self._outbox_made = True
            cfg = self.service.config
            capacity = cfg.event_queue_size + cfg.max_client_requests + 8
            self._outbox, self._outbox_rx = trio.open_memory_channel[bytes | _End](capacity)
        if self._nursery is not None:
            self._writer_started = True
            with contextlib.suppress(RuntimeError):  # the connection has just ended
                self._nursery.start_soon(self._write_loop)
        else:
            self._wake()  # parked: its task comes back and starts the writer

    async def _queue(self, packet: bytes) -> None:
        """Hand a packet to the writer; wait only when its queue is full (backpressure)."""
        if self._write_now(packet):
            return
        self._start_writer()
        # Counted before a send that may wait: the writer can take the packet and
        # be part-way through writing it before this task runs again.
        self._unwritten += 1
        self._unwritten_bytes += len(packet)
        try:
            self._outbox.send_nowait(packet)
        except trio.WouldBlock:
            try:
                await self._outbox.send(packet)
            except BaseException:
                self._unwritten -= 1
                self._unwritten_bytes -= len(packet)
                raise

    def _route(self, procedure: int, status: int) -> Route:
        """The route of a CALL (with or without descriptors), or libvirtd's refusal of it."""
        if status != _OK:
            raise E.unexpected_status(status)
        route = self.service.routes.get(procedure)
        if route is None:
            raise E.unknown_procedure(procedure)
        return route

    async def _reply_error(self, packet: bytes, error: libvirtError) -> None:
        _, program, version, procedure, _, serial, _ = _HEADER.unpack_from(packet)
        await self._queue(error_packet(program, version, procedure, serial, error))

    async def _answer(
        self, route: Route, packet: bytes, procedure: int, serial: int, fds: list[int] | None = None
    ) -> bytes:
        """Run one call and return its whole REPLY packet (OK or ERROR); a call that
        passes descriptors back gets a REPLY_WITH_FDS (an FdReply)."""
        metrics = self._metrics
        start = time.perf_counter() if metrics is not None else 0.0
        code = 0  # the error's VIR_ERR_* code; 0: none
        reply: bytes
        try:
            with self.streams.serving(procedure, serial), fdpass.serving(fds or []) as call_fds:
                payload = await run_call(self, route, memoryview(packet)[_HEADER_SIZE:])
            if call_fds.outgoing:
                reply = fd_reply_packet(
                    self._program, self._version, procedure, serial, payload, call_fds.outgoing
                )
            else:
                reply = reply_packet(self._program, self._version, procedure, serial, _OK, payload)
        except libvirtError as exc:
            code = exc.get_error_code() or -1  # -1: an error without a code
            reply = error_packet(self._program, self._version, procedure, serial, exc)
        except Exception:
            log.exception("client %s: procedure %s failed", self.ctx.conn_id, route.proc.name)
            error = E.unset_error()
            code = error.get_error_code() or -1
            reply = error_packet(self._program, self._version, procedure, serial, error)
        if metrics is not None:
            metrics.call_done(self._program, procedure, code, time.perf_counter() - start)
        return reply

    async def _run_call(
        self, route: Route, packet: bytes, procedure: int, serial: int, fds: list[int] | None = None
    ) -> None:
        try:
            await self._queue(await self._answer(route, packet, procedure, serial, fds))
            self.streams.reply_sent(procedure, serial)  # streams: a stream the call opened starts
        finally:
            self._calls_in_flight -= 1
            self._wake_reader()
            if not self._calls_in_flight and self._calls_done is not None:
                self._calls_done.set()

    # --- writing ------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        rx = self._outbox_rx
        io = self._io
        try:
            item: bytes | _End | None = None
            while True:
                if item is None:
                    item = await rx.receive()
                if isinstance(item, _End):
                    self._unwritten = self._unwritten_bytes = 0
                    if self._conn_scope is not None:
                        self._conn_scope.cancel()
                    return
                if type(item) is FdReply:
                    await self._write_fd_reply(item)
                    item = None
                    continue
                # Join small packets already queued into one write; a packet that
                # would take the batch past _BATCH_BYTES waits for the next write.
                batch = [item]
                size = len(item)
                item = None
                while size < _BATCH_BYTES:
                    try:
                        item = rx.receive_nowait()
                    except trio.WouldBlock:
                        break
                    if isinstance(item, _End) or type(item) is FdReply or size + len(item) > _BATCH_BYTES:
                        break
                    batch.append(item)
                    size += len(item)
                    item = None
                count = len(batch)
                data = batch[0] if count == 1 else b"".join(batch)
                del batch  # the joined copy is all that stays alive while the send waits
                await io.send(data)
                del data
                self._unwritten -= count
                self._unwritten_bytes -= size
                self._wake_reader()
                if self._written is not None and self._unwritten <= 0:  # streams: pacing
                    self._written.set()
                    self._written = None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.abort(f"write failed: {exc}")

    async def _write_fd_reply(self, packet: FdReply) -> None:
        """The packet, then each descriptor in a one-byte message; our copies are
        closed.  A socket that cannot carry them gets the packet, then the
        connection ends, as libvirtd ends it (virNetServerClientDispatchWrite)."""
        try:
            await self._io.send(bytes(packet))
            if not self._io.passes_fds:
                self.abort("Sending file descriptors is not supported on this socket")
                return
            for fd in packet.fds:
                await self._io.send_fd(fd)
        finally:
            fdpass.close_all(packet.fds)
            self._unwritten -= 1
            self._unwritten_bytes -= len(packet)
            self._wake_reader()
            if self._written is not None and self._unwritten <= 0:
                self._written.set()
                self._written = None

    # --- streams (server/streams.py's StreamHost) -------------------------------------------

    async def send_packet(self, packet: bytes) -> None:
        await self._queue(packet)

    async def wait_written(self) -> None:
        while self._unwritten > 0:
            if self._written is None:
                self._written = trio.Event()
            await self._written.wait()

    def start_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is not None:
            with contextlib.suppress(RuntimeError):  # the connection has just ended
                self._nursery.start_soon(fn)

    def drop(self, reason: str) -> None:
        self.abort(reason)

    # --- keepalive ----------------------------------------------------------------------

    async def _keepalive_loop(self) -> None:
        while self.keepalive_deadline is not None:
            await trio.sleep_until(self.keepalive_deadline)
            self.keepalive_deadline = self.keepalive_step(trio.current_time())

    def keepalive_step(self, now: float) -> float | None:
        """The keepalive check due at ``now``: ping a silent client, drop one that
        left ``count`` pings unanswered.  Returns the next deadline, None once the
        client is dropped.  Run by the keepalive task, or by the parking task
        while the connection is parked."""
        cfg = self.service.config
        interval = cfg.keepalive_interval
        if self._reading_paused:
            self.last_rx = now  # we are the silent side; do not count it against them
        if self.last_rx >= self._ka_last_ping:
            self._ka_unanswered = 0  # the peer spoke since our last ping
        if self.last_rx + interval > now:
            self.keepalive_deadline = self.last_rx + interval
            return self.keepalive_deadline
        if self._ka_unanswered >= cfg.keepalive_count:
            if self._metrics is not None:
                self._metrics.keepalive_timeouts += 1
            self.keepalive_deadline = None
            self.abort(f"keepalive timeout: no answer to {cfg.keepalive_count} pings, {interval:g}s apart")
            return None
        self._push(PING_PACKET)
        self._ka_unanswered += 1
        self._ka_last_ping = now
        self.keepalive_deadline = now + interval
        return self.keepalive_deadline

    # --- used by the connection-level procedures ----------------------------------------

    def reopen_refused(self) -> None:
        """libvirtd's quirk: a second CONNECT_OPEN also drops the open connection."""
        self.opened = False
        self.service.bus.drop_owner(self)

    def queue_close(self) -> None:
        """CONNECT_CLOSE: the reply goes out, then the socket closes.

        A flag, not a cancellation: the reader may be running this very call.
        """
        self._closing = True

"""The agent <-> VNF enclave channel: one JSON document per line over the enclave's Unix socket.

The enclave process serves (:class:`EnclaveResponder`); the agent connects (:class:`EnclaveChannel`)
and relays the VM's challenges and credentials. Requests are ``enclave_request`` messages, answers
``enclave_response`` with a result (``enclave_info``, ``enclave_quote``, ``credentials_ack``) or an
error carrying the enclave's reasons. Each side validates what it receives (docs/protocol.md). A
Unix socket is created 0600 inside a 0700 directory: only the agent's user reaches it.

Gramine names Unix sockets per Gramine instance (gramine PR #1761), so two independent enclaves
cannot share one: under Gramine the enclave listens on loopback TCP instead (``tcp://127.0.0.1:PORT``;
the agent finds the address in ``<socket_dir>/<vnf>.tcp``). Nothing on the channel needs secrecy
or a trusted peer: the VM verifies the quotes, the enclave judges the credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Any

from floodlight_trust.enclave.credentials import CredentialsRefused
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import FtrustError, InputError, Location, ServiceError, VerificationError
from floodlight_trust.protocol import validate
from floodlight_trust.reasons import Reason

log = logging.getLogger("floodlight_trust.enclave.channel")

MAX_LINE_BYTES = 1024 * 1024  # a credentials message is a few KiB; DCAP collateral ~ 20 KiB
IO_TIMEOUT_SECONDS = 10.0
SOCKET_SUFFIX = ".sock"
TCP_SUFFIX = ".tcp"  # a file holding an enclave's loopback TCP address (Gramine)


def socket_path(directory: Path, vnf: str) -> Path:
    """Where the enclave of ``vnf`` listens in the agent's enclave socket directory."""
    return directory / f"{vnf}{SOCKET_SUFFIX}"


def tcp_address(text: str) -> tuple[str, int] | None:
    """``tcp://HOST:PORT`` as (host, port); None when ``text`` is a socket path."""
    if not text.startswith("tcp://"):
        return None
    host, _, port = text[len("tcp://") :].rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port (tests)
        raise InputError(f"not a tcp://HOST:PORT address: {text[:80]!r}")
    return host.strip("[]"), int(port)


def _decode(line: bytes, what: str) -> Any:
    if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
        raise InputError(f"{what}: not one JSON line of at most {MAX_LINE_BYTES} bytes")
    try:
        return json.loads(line)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"{what}: not JSON") from None


def _error(e: FtrustError) -> dict[str, Any]:
    kind = (
        "CredentialsRefused"
        if isinstance(e, CredentialsRefused)
        else "InputError"
        if isinstance(e, InputError)
        else "VerificationError"
        if isinstance(e, VerificationError)
        else "InternalError"
    )
    doc: dict[str, Any] = {"type": kind, "message": e.message[:4096]}
    if isinstance(e, CredentialsRefused):
        doc["reasons"] = [{"rule": r.rule, "message": r.message[:1024]} for r in e.refusal[:64]]
    return {"ok": False, "error": doc}


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.connection.settimeout(IO_TIMEOUT_SECONDS)
        while True:
            try:
                line = self.rfile.readline(MAX_LINE_BYTES + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            answer = self.server.answer(line)
            try:
                self.wfile.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
                self.wfile.flush()
            except OSError:
                return
            if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
                return  # framing is lost: close


class _Answering:
    runtime: EnclaveRuntime

    def answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = _decode(line, "enclave request")
            validate("enclave_request", request)
            op = request["op"]
            if op == "info":
                result = self.runtime.info()
            elif op == "evidence":
                result = self.runtime.evidence(bytes.fromhex(request["nonce"]))
            else:
                result = self.runtime.install(request["credentials"])
            return {"ok": True, "result": result}
        except FtrustError as e:
            return _error(e)
        except Exception:  # a bug: the enclave keeps serving, the agent gets a typed error
            log.exception("enclave %s: internal error", self.runtime.vnf)
            return _error(FtrustError("internal error in the enclave runtime"))


class _Server(_Answering, socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class _TcpServer(_Answering, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EnclaveResponder:
    """Serve one enclave runtime on a Unix socket (created 0600; its directory 0700 when new), or
    on ``tcp://HOST:PORT`` (Gramine)."""

    def __init__(self, runtime: EnclaveRuntime, path: Path | str):
        self.runtime = runtime
        self.tcp = tcp_address(str(path))
        self.path = Path(path)
        self._server: _Server | _TcpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        if isinstance(self._server, _TcpServer):
            host, port = self._server.socket.getsockname()[:2]
            return f"tcp://{host}:{port}"
        return str(self.path)

    def start(self) -> EnclaveResponder:
        if self.tcp is not None:
            try:
                tcp = _TcpServer(self.tcp, _Handler)
            except OSError as e:
                raise InputError(f"cannot listen on {self.tcp[0]}:{self.tcp[1]}: {e.strerror}") from None
            tcp.runtime = self.runtime
            return self._run(tcp)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise InputError("exists and is not a socket", location=Location(str(self.path)))
            self.path.unlink()  # a stale socket of an earlier run
        old = os.umask(0o177)
        try:
            server = _Server(str(self.path), _Handler)
        except OSError as e:
            raise InputError(f"cannot listen: {e.strerror}", location=Location(str(self.path))) from None
        finally:
            os.umask(old)
        server.runtime = self.runtime
        return self._run(server)

    def _run(self, server: _Server | _TcpServer) -> EnclaveResponder:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"enclave-{self.runtime.vnf}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.tcp is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class EnclaveChannel:
    """The agent's end: one request, one answer, on a fresh connection each time."""

    def __init__(self, vnf: str, path: Path | str, *, timeout: float = IO_TIMEOUT_SECONDS):
        self.vnf = vnf
        self.path = path
        self.tcp = tcp_address(str(path))
        self.timeout = timeout

    def request(self, request: dict[str, Any], result_schema: str) -> dict[str, Any]:
        validate("enclave_request", request)
        sock = (
            socket.socket(socket.AF_INET6 if self.tcp and ":" in self.tcp[0] else socket.AF_INET)
            if self.tcp
            else (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        )
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.tcp if self.tcp else str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise ServiceError(
                    f"the enclave of VNF {self.vnf!r} is not running (no listener at {self.path})",
                    hint=f"start it: ftrust enclave serve (socket {self.path})",
                ) from None
            except OSError as e:
                raise ServiceError(f"cannot reach the enclave of {self.vnf!r}: {e.strerror or e}") from None
            try:
                sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
                with sock.makefile("rb") as reader:
                    line = reader.readline(MAX_LINE_BYTES + 1)
            except OSError as e:
                raise ServiceError(f"the enclave of {self.vnf!r} did not answer: {e}") from None
        finally:
            sock.close()
        if not line:
            raise ServiceError(f"the enclave of {self.vnf!r} closed the connection without an answer")
        try:
            answer = _decode(line, f"answer of the enclave of {self.vnf!r}")
            validate("enclave_response", answer)
        except InputError as e:
            raise ServiceError(e.message) from None
        if not answer["ok"]:
            err = answer["error"]
            if err["type"] == "CredentialsRefused":
                reasons = [Reason(r["rule"], r["message"]) for r in err.get("reasons", [])]
                raise CredentialsRefused(self.vnf, reasons)
            if err["type"] == "InputError":
                raise InputError(f"enclave of {self.vnf!r}: {err['message']}")
            if err["type"] == "VerificationError":
                raise VerificationError(f"enclave of {self.vnf!r}: {err['message']}")
            raise ServiceError(f"enclave of {self.vnf!r}: {err['message']}")
        result: dict[str, Any] = answer["result"]
        try:
            validate(result_schema, result)
        except InputError as e:
            raise ServiceError(f"enclave of {self.vnf!r} sent a malformed {result_schema}: {e.message}") from None
        if result.get("vnf", self.vnf) != self.vnf:
            raise ServiceError(f"the socket of {self.vnf!r} is served by the enclave of {result['vnf']!r}")
        return result

    def info(self) -> dict[str, Any]:
        return self.request({"op": "info"}, "enclave_info")

    def evidence(self, nonce: bytes) -> dict[str, Any]:
        return self.request({"op": "evidence", "nonce": nonce.hex()}, "enclave_quote")

    def install(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.request({"op": "install", "credentials": message}, "credentials_ack")

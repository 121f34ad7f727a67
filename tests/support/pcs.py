"""One fake of Intel's PCS API v4 (or a PCCS) on loopback, for the tests of collateral fetching.

It serves one FMSPC's TCB info, the QE identity, the processor PCK CRL and the root CA CRL, each
with its issuer chain in the response header Intel's service uses (URL-encoded PEM), and records
every request (path, then ``?query`` when there is one). Any other path answers 404; a path ending
in ``/broken`` answers 500 (a failing service).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType

from floodlight_trust.http.server import HttpServer, JsonApp, RawResponse, Request
from floodlight_trust.sgxsim.platform import SIM_FMSPC, SimulatedPlatform

PREFIX = "/sgx/certification/v4"


class FakePcs:
    def __init__(
        self,
        *,
        fmspc: str,
        tcb_info: bytes,
        tcb_info_signature_hex: str,
        tcb_info_issuer_chain: str,
        qe_identity: bytes,
        qe_identity_signature_hex: str,
        qe_identity_issuer_chain: str,
        pck_crl: bytes,
        pck_crl_issuer_chain: str,
        root_ca_crl: bytes,
    ) -> None:
        def signed(kind: str, body: bytes, signature_hex: str) -> bytes:
            return b'{"' + kind.encode() + b'":' + body + b',"signature":"' + signature_hex.encode() + b'"}'

        quote = urllib.parse.quote
        self.routes: dict[str, tuple[bytes, tuple[tuple[str, str], ...]]] = {
            f"{PREFIX}/tcb?fmspc={fmspc.upper()}": (
                signed("tcbInfo", tcb_info, tcb_info_signature_hex),
                (("TCB-Info-Issuer-Chain", quote(tcb_info_issuer_chain)),),
            ),
            f"{PREFIX}/qe/identity": (
                signed("enclaveIdentity", qe_identity, qe_identity_signature_hex),
                (("SGX-Enclave-Identity-Issuer-Chain", quote(qe_identity_issuer_chain)),),
            ),
            f"{PREFIX}/pckcrl?ca=processor&encoding=der": (
                pck_crl,
                (("SGX-PCK-CRL-Issuer-Chain", quote(pck_crl_issuer_chain)),),
            ),
            f"{PREFIX}/rootcacrl": (root_ca_crl, ()),
        }
        self.requests: list[str] = []
        self._server: HttpServer | None = None

    @classmethod
    def from_dcap_qvl_json(cls, collateral: Mapping[str, str], fmspc: str) -> FakePcs:
        """Serve collateral in dcap-qvl's JSON form (hex CRLs, text TCB info and QE identity), as
        captured from Intel's service; the root CA CRL in hex, as a PCCS serves it."""
        c = collateral
        return cls(
            fmspc=fmspc,
            tcb_info=c["tcb_info"].encode(),
            tcb_info_signature_hex=c["tcb_info_signature"],
            tcb_info_issuer_chain=c["tcb_info_issuer_chain"],
            qe_identity=c["qe_identity"].encode(),
            qe_identity_signature_hex=c["qe_identity_signature"],
            qe_identity_issuer_chain=c["qe_identity_issuer_chain"],
            pck_crl=bytes.fromhex(c["pck_crl"]),
            pck_crl_issuer_chain=c["pck_crl_issuer_chain"],
            root_ca_crl=c["root_ca_crl"].encode(),
        )

    @classmethod
    def for_platform(cls, platform: SimulatedPlatform, at: datetime) -> FakePcs:
        """Serve the simulated platform's collateral as of ``at`` (the root CA CRL in DER)."""
        c = platform.collateral(at)
        return cls(
            fmspc=SIM_FMSPC.hex(),
            tcb_info=c.tcb_info,
            tcb_info_signature_hex=c.tcb_info_signature.hex(),
            tcb_info_issuer_chain=c.tcb_info_issuer_chain.decode(),
            qe_identity=c.qe_identity,
            qe_identity_signature_hex=c.qe_identity_signature.hex(),
            qe_identity_issuer_chain=c.qe_identity_issuer_chain.decode(),
            pck_crl=c.pck_crl,
            pck_crl_issuer_chain=c.pck_crl_issuer_chain.decode(),
            root_ca_crl=c.root_ca_crl,
        )

    def __call__(self, request: Request, rest: str = "") -> RawResponse:
        path = request.path + ("?" + request.query_string if request.query_string else "")
        self.requests.append(path)
        if request.path.endswith("/broken"):
            return RawResponse(500, "text/plain", b"")
        if path not in self.routes:
            return RawResponse(404, "text/plain", b"")
        body, headers = self.routes[path]
        return RawResponse(200, "application/octet-stream", body, headers)

    def start(self) -> FakePcs:
        router = JsonApp(name="fake-pcs")
        router.route("GET", "/{rest*}")(self)
        self._server = HttpServer(router, host="127.0.0.1", port=0, threads=2, name="fake-pcs").start()
        return self

    @property
    def url(self) -> str:
        """The base URL a PCS client is configured with (``.../sgx/certification/v4``)."""
        assert self._server is not None, "FakePcs.start() first"
        return f"http://127.0.0.1:{self._server.port}{PREFIX}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakePcs:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

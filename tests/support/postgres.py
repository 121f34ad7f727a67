"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory.

One cluster per test session (``pg_cluster``), listening on 127.0.0.1 at a free port and on a Unix
socket inside its own directory, with fsync off (nothing in it has to survive a crash of the
machine). Each test that asks for ``pg_database`` gets a database of its own, dropped afterwards,
already migrated: the cluster migrates one template database once (:meth:`LocalCluster.migrated_template`)
and each test's database is a copy of it (``CREATE DATABASE ... TEMPLATE``), so no test pays for
the migrations' DDL. ``pg_blank_database`` is an empty one, for the tests of migrating itself.

initdb and pg_ctl refuse to run as root, so as root (CI runs as root) the cluster is made and run
as ``nobody`` in a directory ``nobody`` owns. The binaries come from PATH or Debian's
/usr/lib/postgresql/<major>/bin (``make setup`` installs them, scripts/ensure-postgres.sh). When
they are missing the tests say plainly that they are skipped; under CI (``CI`` set) they fail.

:class:`LocalCluster` has no pytest in it, so benchmarks can start a cluster the same way.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.requires import missing

MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin "
    "(make setup as root, or apt-get install postgresql)"
)
SUPERUSER = "ftrust"
START_TIMEOUT_SECONDS = 60


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, else the newest Debian major."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if all((p / b).exists() for b in ("initdb", "pg_ctl"))),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class _RunAs:
    """Who runs the server: ourselves, or ``nobody`` when we are root (initdb refuses root)."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_current_user(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(None, None)
        nobody = pwd.getpwnam("nobody")
        return cls(nobody.pw_uid, nobody.pw_gid)

    def run(self, argv: list[str], *, env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
        if self.uid is None:
            return subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=cwd)
        return subprocess.run(
            argv, capture_output=True, text=True, check=False, env=env, cwd=cwd,
            user=self.uid, group=self.gid, extra_groups=[],
        )  # fmt: skip

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


class ClusterError(RuntimeError):
    pass


class LocalCluster:
    """A PostgreSQL cluster of our own in ``root`` (made there on :meth:`start`, removed on :meth:`stop`).

    The superuser ``ftrust`` has a random password: TCP connections (127.0.0.1 only) authenticate
    with it (scram-sha-256), as a production server would; the Unix socket trusts the local user.
    """

    def __init__(self, bindir: Path, root: Path | None = None, *, durable: bool = False) -> None:
        """``durable``: fsync and synchronous commits on, as on a server (benchmarks); the tests'
        clusters keep them off (nothing in them has to survive a crash of the machine)."""
        self.bindir = bindir
        self.durable = durable
        self._run_as = _RunAs.for_current_user()
        # As root the server runs as nobody, who must reach the directory: /tmp (world-traversable)
        # rather than a TMPDIR that may be private to root.
        base = "/tmp" if self._run_as.uid is not None and Path("/tmp").is_dir() else None
        self.root = root or Path(tempfile.mkdtemp(prefix="ftrust-pg-", dir=base))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._started = False
        self._template: str | None = None
        self._dropper: ThreadPoolExecutor | None = None

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        return self._run_as.run([str(self.bindir / tool), *args], env=env, cwd=str(self.root))

    def start(self) -> LocalCluster:
        self._run_as.own(self.root)
        self.root.chmod(0o700)
        self.socket_dir.mkdir(mode=0o700)
        self._run_as.own(self.socket_dir)
        pwfile = self.root / "superuser.pass"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        self._run_as.own(pwfile)
        init = self._pg(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        if init.returncode != 0:
            raise ClusterError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        # A free port can be taken between our probe and the server's bind: try a few.
        last = ""
        for _ in range(3):
            self.port = _free_port()
            if self._start_server():
                return self
            last = self.log_tail()
        raise ClusterError(f"pg_ctl start failed: {last}")

    def _start_server(self) -> bool:
        unsafe = () if self.durable else ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
        options = " ".join(
            (
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                *unsafe,
                "-c max_connections=200",
                "-c shared_buffers=32MB",
                "-c log_min_messages=warning",
            )
        )
        started = self._pg(
            "pg_ctl", "start", "-D", str(self.data), "-w", "-t", str(START_TIMEOUT_SECONDS),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip
        self._started = started.returncode == 0
        return self._started

    def stop_server(self) -> None:
        """Stop the server, fast shutdown (open connections are cut, nothing committed is lost), keep
        its data: :meth:`start_server` brings it back on the same port (a database restart)."""
        self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
        self._started = False

    def start_server(self) -> None:
        if not self._start_server():
            raise ClusterError(f"pg_ctl start failed: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(encoding="utf-8").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._dropper is not None:  # the databases still to drop go with the cluster
            self._dropper.shutdown(wait=True, cancel_futures=True)
            self._dropper = None
        if self._started:
            self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    # Connection strings. Tests that check how a password reaches the driver use ``url(password=False)``
    # and hand the password over separately.
    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        auth = f"{SUPERUSER}:{quote(self.password, safe='')}" if password else SUPERUSER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='')}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the Unix socket (administration: CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.socket_url(database), autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[arg-type]  # test administration, not user input
            return "" if cur.description is None else "\n".join("|".join(map(str, row)) for row in cur.fetchall())

    def create_database(self, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template``; its name."""
        name = "t_" + secrets.token_hex(6)
        # FILE_COPY copies the template's files (with fsync off its checkpoint is cheap) instead of
        # writing every page of it to the WAL as PostgreSQL 15's default does.
        clone = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self.psql(f"CREATE DATABASE {name}{clone}")
        return name

    def migrated_template(self) -> str:
        """A database with every migration of storage/migrations.py applied, made on first use and
        closed to connections (a template with a session on it cannot be copied)."""
        if self._template is None:
            from floodlight_trust.storage.postgres import PostgresStorage
            from floodlight_trust.storage.url import PostgresUrl, parse_storage_url

            name = "ftrust_migrated"
            self.psql(f"CREATE DATABASE {name}")
            url = parse_storage_url(self.url(name))
            assert isinstance(url, PostgresUrl)
            PostgresStorage(url, pool_size=1).close()  # migrates on open
            self.psql(f"ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
            self._template = name
        return self._template

    def create_migrated_database(self) -> str:
        """A new database holding the current schema and no rows (a copy of :meth:`migrated_template`)."""
        return self.create_database(template=self.migrated_template())

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def discard_database(self, name: str) -> None:
        """Drop ``name`` in the background: a DROP DATABASE waits for a checkpoint, the next test
        need not (one thread, so drops never pile up on the server). A drop still pending when the
        cluster stops is cancelled: the cluster's directory goes with it."""
        if self._dropper is None:
            self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")
        self._dropper.submit(self.drop_database, name)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def require_postgres() -> Path:
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    missing(MISSING)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    """One PostgreSQL cluster for the whole session, stopped and removed at its end."""
    cluster = LocalCluster(require_postgres())
    try:
        cluster.start()
    except ClusterError:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True, slots=True)
class PgDatabase:
    """A fresh database on the session's cluster, for one test."""

    cluster: LocalCluster
    name: str

    @property
    def url(self) -> str:
        """The connection URL with the password in it (as a 0600 config file may carry it)."""
        return self.cluster.url(self.name)

    @property
    def url_without_password(self) -> str:
        return self.cluster.url(self.name, password=False)

    @property
    def password(self) -> str:
        return self.cluster.password


@pytest.fixture()
def pg_database(pg_cluster: LocalCluster) -> Iterator[PgDatabase]:
    """A migrated database of its own (the current schema, no rows), dropped after the test."""
    name = pg_cluster.create_migrated_database()
    try:
        yield PgDatabase(pg_cluster, name)
    finally:
        pg_cluster.discard_database(name)


@pytest.fixture()
def pg_blank_database(pg_cluster: LocalCluster) -> Iterator[PgDatabase]:
    """An empty database of its own (no tables: nothing migrated), dropped after the test."""
    name = pg_cluster.create_database()
    try:
        yield PgDatabase(pg_cluster, name)
    finally:
        pg_cluster.discard_database(name)


class TcpProxy:
    """A loopback TCP forwarder to ``target`` that a test can cut: the network between one replica
    and its database, failing while the database itself (and every other replica) goes on.

    :meth:`cut` closes every forwarded connection and stops listening (new connections are
    refused, as by a host whose route is gone); :meth:`restore` listens again on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()

    def start(self) -> TcpProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-proxy").start()
        return self

    restore = start

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass  # the other direction, or cut(), closed it
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        s.close()

    def freeze(self) -> None:
        """Nothing passes any more and nothing is closed: to the database the peer went silent, as
        when its machine loses power (no FIN, no RST ever reaches the server)."""
        self._flowing.clear()

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() first: close() alone leaves a socket that a thread blocks accept() on listening.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not every platform allows it on a listening socket; close() then suffices
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            self._close(s)
        self._flowing.set()  # the pumps blocked by freeze() end on their closed sockets

    def url(self, database_url: str) -> str:
        """``database_url`` (host 127.0.0.1) through this proxy."""
        host, port = self.target
        assert f"@{host}:{port}/" in database_url
        return database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")

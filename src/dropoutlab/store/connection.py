"""Where a store lives and how it is reached: an SQLite file (checked before SQLite sees it:
not ours, not writable, on a network file system) or a PostgreSQL URL, and the SQLAlchemy
engine for each; database errors as one line."""

from __future__ import annotations

import re
import sqlite3
import tempfile
from pathlib import Path

import sqlalchemy as sa

from dropoutlab.errors import DropoutlabError

SQLITE_HEADER = b"SQLite format 3\x00"
POSTGRES_DRIVER = "postgresql+psycopg"  # what a plain postgresql:// URL is opened with
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str | Path) -> bool:
    """Whether a ``--store`` value is a database URL (``postgresql://...``) rather than a file path."""
    return isinstance(location, str) and bool(_URL.match(location))


def check_store_file(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite sees it (it would say only "file is not a database")."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet; check_writable says more
        return
    except OSError as exc:
        raise DropoutlabError(f"{path}: cannot read the store ({exc.strerror})") from None
    if head and head != SQLITE_HEADER:
        raise DropoutlabError(
            f"{path}: not a dropoutlab store: the file is not an SQLite database; "
            "it was left unchanged; choose another --store path"
        )


def check_writable(path: Path, create_folder: bool = True) -> None:
    """Whether a store at ``path`` can be written: the file, and its folder (SQLite writes a journal
    beside the file). Tried for real (a temporary file in the folder), so it holds for root too.
    ``create_folder=False`` creates nothing and tries the nearest folder that exists."""
    folder = path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise DropoutlabError(f"{path}: cannot create the store: {existing} is a file, not a folder")
    try:
        if create_folder:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder if create_folder else existing):
            pass
    except OSError as exc:
        raise DropoutlabError(
            f"{path}: the folder {folder} is not writable ({exc.strerror}); dropoutlab writes each "
            "finished run into the store: choose a writable --store path"
        ) from None
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            raise DropoutlabError(
                f"{path}: the store file is not writable ({exc.strerror}); make it writable, or read it "
                "with `dropoutlab report` or `export`, which only read"
            ) from None


def holds_store(location: str | Path) -> bool:
    """Whether ``location`` holds something already (a non-empty file, a database with tables),
    which ``Store(location, readonly=True)`` then opens or refuses. Reads nothing else."""
    if not is_url(location):
        path = Path(location)
        return path.exists() and (path.is_dir() or path.stat().st_size > 0)
    engine, shown = postgres_engine(str(location), readonly=True)
    try:
        with engine.connect() as conn:
            return bool(table_names(conn))
    except sa.exc.DBAPIError as exc:
        raise cannot_open(shown, True, exc, url_secrets(location)) from None
    finally:
        engine.dispose()


def table_names(conn: sa.Connection) -> set[str]:
    """The names of the tables in the database of ``conn``."""
    return set(sa.inspect(conn).get_table_names())


def cannot_open(
    name: str, postgres: bool, exc: sa.exc.DBAPIError, secrets: list[str] = ()
) -> DropoutlabError:
    """The one line for a database that refused to open: a PostgreSQL server's words, or an
    SQLite file that is not a store."""
    if not postgres and is_malformed(exc):
        return corrupt(name, reason(exc))
    what = "cannot open the PostgreSQL store" if postgres else "not a dropoutlab store"
    return DropoutlabError(f"{name}: {what} ({reason(exc, secrets)})")


def is_malformed(exc: sa.exc.DBAPIError) -> bool:
    """Whether SQLite said that the file's pages are damaged (a store, corrupt), rather than
    that the file is not a database at all."""
    return isinstance(exc.orig, sqlite3.DatabaseError) and "malformed" in str(exc.orig)


def sqlite_damage(conn: sa.Connection) -> str | None:
    """What SQLite's ``PRAGMA quick_check`` finds wrong with the file of ``conn``, or None when
    its pages are whole. Reads every page: for error paths only."""
    try:
        found = conn.exec_driver_sql("PRAGMA quick_check(1)").scalar()
    except sa.exc.DBAPIError as exc:
        return reason(exc)
    if found == "ok":
        return None
    lines = [line for line in str(found).splitlines() if line.strip() and not line.startswith("***")]
    return (lines or [str(found)])[0][:200]


def corrupt(name: str, damage: str) -> DropoutlabError:
    """The one line for an SQLite store whose pages are damaged."""
    return DropoutlabError(
        f"{name}: the store is corrupt ({damage}); it was left unchanged: restore it from a copy, or save "
        f"what can be read with `sqlite3 {name} .recover`"
    )


def reason(exc: sa.exc.DBAPIError, secrets: list[str] = ()) -> str:
    """The database's own words for ``exc``, on one line, with any credential masked (those
    of the URL in ``secrets``, and anything shaped like one: :func:`masked_text`)."""
    text = str(exc.orig).strip() if exc.orig is not None else str(exc)
    text = (text.splitlines() or [""])[0]
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return masked_text(text)


NETWORK_FILE_SYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs",
                        "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.s3fs", "fuse.gcsfuse"}  # fmt: skip


def network_file_system(path: Path, mounts: str | None = None) -> str | None:
    """The type of the network file system ``path`` lies on (``nfs4``, ``cifs``...), or None
    (a local disk, or not Linux). ``mounts`` is ``/proc/self/mounts``'s text, read when None."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    folder = path.resolve().parent
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (folder == point or point in folder.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[2]
    return kind if kind in NETWORK_FILE_SYSTEMS else None


def sqlite_engine(path: Path, readonly: bool) -> sa.Engine:
    """One SQLite connection for the store's life. SQLAlchemy emits the BEGIN itself, so that a
    write takes the file's lock from its first statement (``BEGIN IMMEDIATE``): two drivers
    writing one file take turns instead of failing on a lock upgrade."""
    target = f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path)
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(target, uri=readonly, timeout=30, check_same_thread=False),
        poolclass=sa.StaticPool,
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN from the sqlite3 module
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        immediate = connection.get_execution_options().get("immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# Query parameters of a URL that hold a secret: libpq's password and the key file's passphrase.
SECRET_QUERY = frozenset({"password", "sslpassword"})
_SECRET_IN_TEXT = re.compile(r"(?i)(^|[?&\s])((?:ssl)?password=)[^&\s]*|(://[^:/@\s]*:)[^@\s]*(@)")


def shown_url(url: sa.URL) -> str:
    """``url`` as messages show it: every credential SQLAlchemy's URL holds masked as ``***``
    (the password, and the query parameters ``password`` and ``sslpassword``)."""
    mark = "MASKED0dropoutlab"  # letters and digits: the URL renders it as it is, to be swapped for ***
    query = {k: (mark if k.lower() in SECRET_QUERY else v) for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True).replace(mark, "***")


def masked_text(text: str) -> str:
    """``text`` (a URL SQLAlchemy could not parse, or a driver's message) with anything shaped
    like a credential masked: ``user:SECRET@`` and ``password=SECRET`` / ``sslpassword=SECRET``."""
    return _SECRET_IN_TEXT.sub(
        lambda m: f"{m.group(1)}{m.group(2)}***" if m.group(2) else f"{m.group(3)}***{m.group(4)}", text
    )


def url_secrets(location: str | Path) -> list[str]:
    """The credentials written in a store URL (its password and secret query values), to mask
    wherever a driver's message may repeat them."""
    if not is_url(location):
        return []
    try:
        url = sa.make_url(str(location))
    except (sa.exc.ArgumentError, ValueError):
        return []
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if key.lower() in SECRET_QUERY:
            values.extend([value] if isinstance(value, str) else value)
    return [str(v) for v in values if v]


def postgres_engine(url: str, readonly: bool) -> tuple[sa.Engine, str]:
    """An engine on a PostgreSQL URL (a plain ``postgresql://`` is opened with psycopg), and the
    URL as shown in messages (without its password)."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DropoutlabError(
            f"{masked_text(url)}: not a database URL; give a file path or postgresql://USER@HOST/DB"
        ) from None
    shown = shown_url(parsed)
    if parsed.get_backend_name() != "postgresql":
        raise DropoutlabError(
            f"{shown}: a store is an SQLite file path or a PostgreSQL URL (postgresql://USER@HOST/DB), "
            f"not a {parsed.get_backend_name()!r} URL"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    try:  # a server that does not answer is said so in 10 s, not after the system's TCP timeout
        engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except sa.exc.NoSuchModuleError:
        raise DropoutlabError(
            f"{shown}: SQLAlchemy knows no driver {parsed.drivername!r}; write postgresql://USER@HOST/DB"
        ) from None
    except ModuleNotFoundError as exc:
        raise DropoutlabError(
            f"{shown}: a PostgreSQL store needs its driver ({exc.name} is not installed): "
            'pip install "dropoutlab[postgres]"'
        ) from None
    return (engine.execution_options(postgresql_readonly=True) if readonly else engine), shown

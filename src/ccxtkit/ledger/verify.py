"""Verifying the hash chain, and digests that catch truncation and rewrites."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
from array import array
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, LedgerIntegrityError
from ..logs import log
from .catalog import check_catalog
from .chain import GENESIS_HASH, canonical_select, now_utc
from .instance import all_cores, cores
from .schema import expected_tables
from .store import Head, Ledger, applied_migrations

if TYPE_CHECKING:
    from ..workspace import Workspace

#: The latest verify's outcome, in the workspace's state/ folder.
VERIFY_STATE = "ledger_verify.json"
#: Rows checked per SQL batch: keeps memory flat however long the ledger is.
BATCH_ROWS = 100_000
#: Batches up to this many rows have their links checked in plain Python (see _Links).
_SMALL_BATCH = 20_000
#: From this many rows on, a read-only verify may split the seq range over worker processes:
#: starting one costs about 0.3 CPU-s, a million rows about 4 CPU-s.
PARALLEL_ROWS = 200_000
#: Cores one verify process keeps busy: DuckDB builds the texts on its threads while the main
#: thread hashes (measured: one process on 2 cores was as fast as two, and used less CPU), so
#: a process per CORES_PER_PROCESS cores.
CORES_PER_PROCESS = 2
#: At most this many ranges (the parent's own and its workers').
MAX_WORKERS = 8


@dataclass(frozen=True)
class Problem:
    """The first row where the chain breaks, and what is wrong with it."""

    seq: int
    table: str
    reason: str

    def describe(self) -> str:
        return f"row seq {self.seq} (table {self.table}): {self.reason}"


@dataclass(frozen=True)
class VerifyResult:
    """What verify checked and the first problem it found, if any."""

    rows: int
    head: Head
    problem: Problem | None
    digest_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


def _first_link_break(
    ledger: Ledger, lo: int, hi: int, prev_seq: int, prev_hash: str
) -> tuple[int, str, str] | None:
    """First (seq, table, reason) with lo < seq <= hi whose seq or link is wrong."""
    union = " UNION ALL ".join(
        f"SELECT seq, '{t}' AS tbl, prev_hash, row_hash FROM \"{t}\" WHERE seq > ? AND seq <= ?"
        for t in ledger.tables
    )
    sql = f"""
        WITH b AS (
            SELECT seq, tbl, prev_hash, row_hash,
                   coalesce(lag(seq) OVER w, ?) AS before_seq,
                   coalesce(lag(row_hash) OVER w, ?) AS before_hash
            FROM ({union}) WINDOW w AS (ORDER BY seq, tbl)
        )
        SELECT seq, tbl, before_seq FROM b
        WHERE seq <> before_seq + 1 OR prev_hash <> before_hash
        ORDER BY seq, tbl LIMIT 1
    """
    params: list[object] = [prev_seq, prev_hash]
    for _ in ledger.tables:
        params += [lo, hi]
    row = ledger.query(sql, params)
    if not row:
        return None
    seq, table, before_seq = int(row[0][0]), str(row[0][1]), int(row[0][2])
    if seq == before_seq:
        reason = "sequence number used twice (a row was inserted)"
    elif seq != before_seq + 1:
        reason = (
            f"expected seq {before_seq + 1} next, found {seq} "
            f"(row(s) {before_seq + 1}..{seq - 1} deleted)"
        )
    else:
        reason = "does not link to the row before it (rows inserted, deleted or reordered)"
    return seq, table, reason


def _offsets(array: Any) -> tuple[list[int], memoryview]:
    """The value boundaries and bytes of an Arrow string array, without making Python strs."""
    import pyarrow as pa

    _, offsets, data = array.buffers()
    raw = memoryview(offsets)
    bounds = raw.cast("q") if pa.types.is_large_string(array.type) else raw.cast("i")
    window = bounds[array.offset : array.offset + len(array) + 1]
    return window.tolist(), memoryview(data) if data is not None else memoryview(b"")


class _Links:
    """The links seen while hashing, table by table: proves the chain whole in one pass.

    Within a table stored in seq order, a row whose seq follows the previous row's must link to
    it (checked vectorised); every other row starts a run whose predecessor lives elsewhere, so
    its (seq, prev_hash) is kept, with the hash ending each run, and matched at the end. Any
    doubt (rows out of order, a bad link) sends verify to the exact SQL pass.
    """

    def __init__(self) -> None:
        self.ends: dict[int, str] = {}
        self.starts: list[tuple[int, str | None]] = []
        self.doubt = False
        self._last: tuple[int, str] | None = None

    def table_done(self) -> None:
        if self._last is not None:
            self.ends[self._last[0]] = self._last[1]
        self._last = None

    def _first(self, first_seq: int, first_prev: str | None) -> None:
        """The batch's first row: it continues the run before it, or starts a new one."""
        if self._last is not None and first_seq == self._last[0] + 1:
            self.doubt |= first_prev != self._last[1]
        else:
            if self._last is not None:
                self.doubt |= first_seq <= self._last[0]
                self.ends[self._last[0]] = self._last[1]
            self.starts.append((first_seq, first_prev))

    def add(self, seq: Any, prev: Any, stored: Any) -> None:
        if len(seq) <= _SMALL_BATCH and self._add_small(seq, prev, stored):
            return
        if self._add_run(seq, prev, stored):
            return
        import pyarrow.compute as pc

        n = len(seq)
        self._first(seq[0].as_py(), prev[0].as_py())
        if n > 1:
            diffs = pc.subtract(seq.slice(1), seq.slice(0, n - 1))
            self.doubt |= pc.min(diffs).as_py() <= 0
            consecutive = pc.equal(diffs, 1)
            linked = pc.fill_null(pc.equal(prev.slice(1), stored.slice(0, n - 1)), False)
            self.doubt |= not pc.all(pc.or_(pc.invert(consecutive), linked)).as_py()
            gaps = pc.indices_nonzero(pc.invert(consecutive))
            if len(gaps):
                ends = zip(
                    pc.take(seq, gaps).to_pylist(), pc.take(stored, gaps).to_pylist(), strict=True
                )
                self.ends.update(ends)
                nxt = pc.add(gaps, 1)
                starts = zip(
                    pc.take(seq, nxt).to_pylist(), pc.take(prev, nxt).to_pylist(), strict=True
                )
                self.starts.extend(starts)
        self._last = (seq[n - 1].as_py(), stored[n - 1].as_py())

    def _add_run(self, seq: Any, prev: Any, stored: Any) -> bool:
        """A batch of consecutive seqs, each row linked to the one before: the usual batch,
        proved by comparing buffers (no pyarrow.compute to import: 55 ms of start-up). False,
        with nothing recorded, for any other batch."""
        import pyarrow as pa

        n = len(seq)
        if seq.type != pa.int64() or seq.null_count or prev.null_count or stored.null_count:
            return False
        first = seq[0].as_py()
        values = memoryview(seq.buffers()[1]).cast("B")[seq.offset * 8 : (seq.offset + n) * 8]
        if values != memoryview(array("q", range(first, first + n))).cast("B"):
            return False
        if n > 1 and not prev.slice(1).equals(stored.slice(0, n - 1)):
            return False
        self._first(first, prev[0].as_py())
        self._last = (first + n - 1, stored[n - 1].as_py())
        return True

    def _add_small(self, seq: Any, prev: Any, stored: Any) -> bool:
        """A small batch checked in plain Python: no pyarrow.compute to import for a small
        ledger (tens of ms of start-up). False, with nothing recorded, when a seq is NULL."""
        seqs = seq.to_pylist()
        if None in seqs:
            return False
        prevs, hashes = prev.to_pylist(), stored.to_pylist()
        self._first(seqs[0], prevs[0])
        for i in range(1, len(seqs)):
            step = seqs[i] - seqs[i - 1]
            if step == 1:
                self.doubt |= prevs[i] is None or prevs[i] != hashes[i - 1]
            else:
                self.doubt |= step <= 0
                self.ends[seqs[i - 1]] = hashes[i - 1]
                self.starts.append((seqs[i], prevs[i]))
        self._last = (seqs[-1], hashes[-1])
        return True

    def whole(self) -> bool:
        """True when every run links to the row before it (seq 1 to the genesis hash)."""
        if self.doubt:
            return False
        for seq, prev in self.starts:
            if prev != (GENESIS_HASH if seq == 1 else self.ends.get(seq - 1)):
                return False
        return True


def _ahead(source: Iterator[Any], depth: int = 2) -> Generator[Any, None, None]:
    """The items of `source`, pulled in a thread at most `depth` ahead of the consumer.

    DuckDB builds the canonical texts without the GIL, so the next batch is built on the
    other core while this thread hashes the current one. An exception in the thread is
    raised here; memory stays bounded by `depth` batches.
    """
    ready: queue.Queue[tuple[Any] | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in source:
                if stop.is_set():
                    return
                ready.put((item,))
            ready.put(None)
        except BaseException as exc:  # handed to the consuming thread, which raises it
            ready.put(exc)

    worker = threading.Thread(target=run, name="vhc-verify-stage", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item[0]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _batches(ledger: Ledger, table: str, where: str = "") -> Iterator[Any]:
    """Batches of (seq, prev_hash, row_hash, canon) over `table`, scanned one batch ahead."""
    sql = (
        "SELECT seq, prev_hash, row_hash, canon "
        f"FROM ({canonical_select(table, ledger.kinds(table), where)})"
    )
    reader = ledger.con.sql(sql).to_arrow_reader(BATCH_ROWS)
    return _ahead(b for b in reader if b.num_rows)


def _first_bad_hash(ledger: Ledger, table: str, links: _Links, where: str = "") -> int | None:
    """Lowest seq of `table` whose row_hash is not SHA-256 of its canonical text (Python's)."""
    import pyarrow as pa

    sha256 = hashlib.sha256
    worst: int | None = None
    for batch in _batches(ledger, table, where):
        canon, stored = batch.column(3), batch.column(2)
        links.add(batch.column(0), batch.column(1), stored)
        if canon.null_count or stored.null_count or not pa.types.is_string(stored.type):
            stored_list, canon_list = stored.to_pylist(), canon.to_pylist()
            digests = [sha256((c or "").encode()).hexdigest() for c in canon_list]
        else:
            bounds, data = _offsets(canon)
            digests = [
                sha256(data[a:b]).hexdigest() for a, b in zip(bounds, bounds[1:], strict=False)
            ]
            hb, hdata = _offsets(stored)
            if "".join(digests).encode() == bytes(hdata[hb[0] : hb[-1]]):
                continue  # every hash in the batch matches: the usual case, one comparison
            stored_list = stored.to_pylist()
        seqs = batch.column(0).to_pylist()
        bad = [s for s, d, h in zip(seqs, digests, stored_list, strict=True) if d != h]
        if bad:
            low = min(bad)
            worst = low if worst is None else min(worst, low)
    return worst


@dataclass(frozen=True)
class _Part:
    """What the scan of one seq range found: with the other ranges', proof of the whole chain."""

    distinct: int  # distinct seqs in the range
    low: int | None  # its lowest seq
    bad: tuple[int, str] | None  # its lowest (seq, table) whose hash does not match
    whole: bool  # every row links to the one before (the first to the row ending the range before)


def _range_where(lo: int | None, hi: int | None) -> str:
    """The rows with lo < seq <= hi; None is open (the first range also takes NULL seqs)."""
    if lo is None:
        return "" if hi is None else f"(seq <= {int(hi)} OR seq IS NULL)"
    return f"seq > {int(lo)}" + ("" if hi is None else f" AND seq <= {int(hi)}")


def _scan_part(ledger: Ledger, lo: int | None, hi: int | None) -> _Part:
    """Hash and link-check the rows with lo < seq <= hi, in one pass over each table."""
    where = _range_where(lo, hi)
    links = _Links()
    if lo is not None and lo > 0:
        # The range's first row links to the row ending the range before, whose own hash that
        # range's scan checks: so the link across every boundary is proven too.
        union = " UNION ALL ".join(
            f'SELECT row_hash FROM "{t}" WHERE seq = {int(lo)}' for t in ledger.tables
        )
        found = ledger.query(union)
        if len(found) == 1 and found[0][0] is not None:
            links.ends[lo] = str(found[0][0])
        else:
            links.doubt = True  # missing or doubled: the exact SQL pass says which
    bad: list[tuple[int, str]] = []
    for table in ledger.tables:
        seq = _first_bad_hash(ledger, table, links, where)
        if seq is not None:
            bad.append((seq, table))
        links.table_done()
    filtered = f" WHERE {where}" if where else ""
    distinct, low = ledger.query(
        "SELECT count(DISTINCT seq), min(seq) FROM ("
        + " UNION ALL ".join(f'SELECT seq FROM "{t}"{filtered}' for t in ledger.tables)
        + ")"
    )[0]
    return _Part(
        int(distinct), None if low is None else int(low), min(bad, default=None), links.whole()
    )


def _ranges(max_seq: int, parts: int) -> list[tuple[int | None, int | None]]:
    """`parts` consecutive seq ranges (lo, hi] covering every row, the first and last open."""
    cuts = [max_seq * k // parts for k in range(1, parts)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def _worker_count(ledger: Ledger, rows: int, workers: int | None) -> int:
    """Processes to verify with (this one included): `workers`, or one per two cores."""
    if not ledger.read_only:
        return 1  # a read-write connection locks the file against other processes
    if workers is None:
        if rows < PARALLEL_ROWS:
            return 1
        workers = cores() // CORES_PER_PROCESS
    return max(1, min(workers, MAX_WORKERS, rows))


#: What a worker process runs: `python -c _WORKER path threads`, then a "lo hi" line per range.
_WORKER = "from ccxtkit.ledger.verify import worker_main; worker_main()"
#: Ranges per process: small enough that a process slowed by other load gets fewer of them.
RANGES_PER_WORKER = 2


def _spawn(path: Path, threads: int) -> subprocess.Popen[bytes] | None:
    """Start a worker process on the file at `path`, or None when none can be started."""
    if not sys.executable:
        return None
    env = dict(os.environ)
    # The worker imports this very copy of vhc, however this process found it.
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a failed worker's ranges are redone (and raise) here
            env=env,
        )
    except OSError as exc:
        log.debug("verify worker not started: %s", exc)
        return None


def _shape(ledger: Ledger) -> dict[str, list[list[str]]]:
    return {t: [list(k) for k in ledger.kinds(t)] for t in ledger.tables}


def _part_of(doc: Any) -> _Part:
    bad = doc["bad"]
    return _Part(
        int(doc["distinct"]),
        None if doc["low"] is None else int(doc["low"]),
        None if bad is None else (int(bad[0]), str(bad[1])),
        bool(doc["whole"]),
    )


class _Work:
    """The ranges still to scan, handed out one at a time, and what each scan found."""

    def __init__(self, ranges: list[tuple[int | None, int | None]]) -> None:
        self.ranges = ranges
        self.parts: dict[int, _Part] = {}
        self.refused: str | None = None
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.ranges) or self.refused is not None:
                return None
            self._next += 1
            return self._next - 1

    def close(self) -> None:
        """Hand out nothing more (this process failed)."""
        with self._lock:
            self._next = len(self.ranges)

    def missing(self) -> list[int]:
        return [i for i in range(len(self.ranges)) if i not in self.parts]


def _feed(proc: subprocess.Popen[bytes], work: _Work, shape: dict[str, Any]) -> None:
    """Hand ranges to one worker until none are left; on any failure, leave them to the parent."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        hello = json.loads(proc.stdout.readline())
        if "refused" in hello:
            work.refused = str(hello["refused"])
            return
        if hello.get("shape") != shape:
            log.debug("verify worker saw other tables: %s", hello)
            return
        while (index := work.take()) is not None:
            lo, hi = work.ranges[index]
            proc.stdin.write(f"{'-' if lo is None else lo} {'-' if hi is None else hi}\n".encode())
            proc.stdin.flush()
            work.parts[index] = _part_of(json.loads(proc.stdout.readline()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("verify worker failed (the parent scans its ranges): %r", exc)
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass


def _scan(ledger: Ledger, max_seq: int, workers: int) -> list[_Part]:
    """Every row hashed and link-checked: this process and its workers share the seq ranges."""
    if workers <= 1:
        with all_cores(ledger.con):
            return [_scan_part(ledger, None, None)]
    work = _Work(_ranges(max_seq, min(workers * RANGES_PER_WORKER, max(max_seq, 1))))
    threads = max(1, cores() // workers)  # DuckDB threads per worker: the cores shared out
    procs = [p for p in (_spawn(ledger.path, threads) for _ in range(workers - 1)) if p]
    shape = _shape(ledger)
    feeders = [threading.Thread(target=_feed, args=(p, work, shape), daemon=True) for p in procs]
    # This process's DuckDB gets its share of the cores too.
    with all_cores(ledger.con, threads):
        try:
            for feeder in feeders:
                feeder.start()
            while (index := work.take()) is not None:
                work.parts[index] = _scan_part(ledger, *work.ranges[index])
            for feeder in feeders:
                feeder.join()
            if work.refused is not None:
                raise LedgerIntegrityError(work.refused)
            for index in work.missing():  # a worker that failed: its ranges are done here
                work.parts[index] = _scan_part(ledger, *work.ranges[index])
            return [work.parts[i] for i in range(len(work.ranges))]
        except BaseException:
            work.close()
            for proc in procs:
                proc.kill()
            raise
        finally:
            for proc in procs:
                try:
                    proc.wait(timeout=30)  # its input is closed: it is closing the file
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def worker_main(argv: Sequence[str] | None = None) -> None:
    """A verify worker: check the catalog itself, then scan each "lo hi" range read from stdin.

    Prints one JSON line with the tables it found (or why it refuses the file), then one per
    range. Opens the file read-only while the parent holds the ledger's lock and its own
    read-only connection; DuckDB lets several processes read one file.
    """
    import duckdb

    args = list(argv if argv is not None else sys.argv[1:])
    path, threads = Path(args[0]), int(args[1]) if len(args) > 1 else 1
    out = sys.stdout
    con = duckdb.connect(str(path), read_only=True)
    try:
        try:
            check_catalog(con, path)  # first, before any other query, in this process too
            con.execute("SET enable_progress_bar = false")  # its stderr is not a terminal
            con.execute(f"SET threads = {max(1, threads)}")  # the other cores: other processes'
            ledger = Ledger(con, path, read_only=True)
        except LedgerIntegrityError as exc:
            out.write(json.dumps({"refused": exc.message}) + "\n")
            return
        out.write(json.dumps({"shape": _shape(ledger)}) + "\n")
        out.flush()
        for line in sys.stdin:
            lo_arg, hi_arg = line.split()
            lo = None if lo_arg == "-" else int(lo_arg)
            hi = None if hi_arg == "-" else int(hi_arg)
            part = _scan_part(ledger, lo, hi)
            doc = {"distinct": part.distinct, "low": part.low, "bad": part.bad, "whole": part.whole}
            out.write(json.dumps(doc) + "\n")
            out.flush()
    finally:
        con.close()


def verify_chain(ledger: Ledger, workers: int | None = None) -> VerifyResult:
    """Check every row's hash (in Python) and link, over every chained table of the file.

    A read-only ledger of PARALLEL_ROWS rows or more is split by seq over one process per two
    cores (`workers` sets how many); the result, first bad row included, is the same either way.
    """
    head = ledger.head()
    expected = expected_tables(applied_migrations(ledger.con))
    missing = [t for t in expected if t not in ledger.tables]
    if missing and ledger.tables:
        return VerifyResult(
            _count(ledger), head, Problem(0, missing[0], "the table is missing (dropped)")
        )
    if not ledger.tables:
        return VerifyResult(0, head, None)
    count, max_seq = _count(ledger), head.seq
    parts = _scan(ledger, max_seq, _worker_count(ledger, count, workers))
    bad = sorted(p.bad for p in parts if p.bad is not None)
    distinct = sum(p.distinct for p in parts)
    low = min((p.low for p in parts if p.low is not None), default=1)
    # count distinct seqs, all >= 1, the highest = count: the seqs are exactly 1..count.
    if not bad and count == max_seq == distinct and low == 1 and all(p.whole for p in parts):
        return VerifyResult(count, head, None)  # the usual case: one pass, no sort
    link: tuple[int, str, str] | None = None
    prev_seq, prev_hash = 0, GENESIS_HASH
    lo = 0
    while lo < max_seq and link is None:
        hi = lo + BATCH_ROWS
        link = _first_link_break(ledger, lo, hi, prev_seq, prev_hash)
        last = ledger.query(
            "SELECT seq, row_hash FROM ("
            + " UNION ALL ".join(
                f'SELECT seq, row_hash FROM "{t}" WHERE seq > {lo} AND seq <= {hi}'
                for t in ledger.tables
            )
            + ") ORDER BY seq DESC LIMIT 1"
        )
        if last:
            prev_seq, prev_hash = int(last[0][0]), str(last[0][1])
        lo = hi
    first_bad = min(bad) if bad else None
    if first_bad is not None and (link is None or first_bad[0] <= link[0]):
        if link is None or first_bad[0] < link[0] or "does not link" in link[2]:
            reason = "contents do not match the row's hash (the row was modified)"
            return VerifyResult(count, head, Problem(first_bad[0], first_bad[1], reason))
    if link is not None:
        return VerifyResult(count, head, Problem(*link))
    if count != max_seq:
        # Contiguity was checked batch by batch, so a mismatch here means duplicate seqs.
        return VerifyResult(count, head, Problem(max_seq, "?", "row count mismatch"))
    return VerifyResult(count, head, None)


def _count(ledger: Ledger) -> int:
    sql = " + ".join(f'(SELECT count(*) FROM "{t}")' for t in ledger.tables) or "0"
    return int(ledger.query(f"SELECT {sql}")[0][0])


def record_outcome(ws: Workspace, ok: bool, rows: int, head: Head | None) -> None:
    """Keep the latest verify's outcome beside the ledger (state/), never in it: metrics read it."""
    from ..workspace import write_private

    doc = {
        "ok": ok,
        "rows": rows,
        "seq": head.seq if head else None,
        "hash": head.hash if head else None,
        "at": now_utc().isoformat(),
    }
    write_private(ws.state_dir / VERIFY_STATE, json.dumps(doc) + "\n")


def last_outcome(state_dir: Path) -> tuple[bool, datetime] | None:
    """(ok, when, naive UTC) of the latest `vhc ledger verify`, if one was recorded."""
    try:
        doc = json.loads((state_dir / VERIFY_STATE).read_text(encoding="utf-8"))
        return doc["ok"] is True, datetime.fromisoformat(doc["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alert_failure(ws: Workspace, message: str) -> None:
    """A critical alert for a failed verify (the nightly cron's way to reach a person)."""
    from ..alerts import Alert, send_alert

    send_alert(ws, Alert("critical", "Ledger verify failed", message, key="ledger.verify"))


def make_digest(ledger: Ledger) -> dict[str, object]:
    """The head as {"seq", "hash"}: keep it somewhere the ledger's owner cannot rewrite."""
    head = ledger.head()
    return {"seq": head.seq, "hash": head.hash}


def read_digest(path: Path) -> Head:
    """Load a digest file written by `vhc ledger digest`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Head(int(data["seq"]), str(data["hash"]))
    except FileNotFoundError:
        raise InputError(f"digest file {path} not found") from None
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f'{path}: not a vhc digest (expected JSON {{"seq": N, "hash": "..."}})'
        ) from None


def check_digest(ledger: Ledger, digest: Head) -> Problem | None:
    """Does the ledger still contain the digest's row with the digest's hash?"""
    if digest.seq == 0:
        return None
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, row_hash FROM \"{t}\" WHERE seq = {int(digest.seq)}"
        for t in ledger.tables
    )
    found = ledger.query(f"SELECT * FROM ({union})") if union else []
    if not found:
        head = ledger.head()
        return Problem(
            digest.seq,
            "?",
            f"the digest's row is gone: the ledger ends at seq {head.seq} (history was truncated)",
        )
    table, stored = found[0]
    if stored != digest.hash:
        return Problem(
            digest.seq, str(table), "hash differs from the digest (history was rewritten)"
        )
    return None

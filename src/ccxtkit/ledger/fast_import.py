"""The fast path of `vhc ledger import`: DuckDB parses and checks, Python only chains the hashes.

A file every row of which passes strict checks in SQL (plain decimals, ISO timestamps,
buy/sell, BASE/QUOTE symbols) is loaded here: DuckDB reads the CSV, drops trades already in
the ledger, and builds each row's canonical text except what depends on the chain; Python
adds seq, prev hash and cost and hashes in order. Anything the strict checks do not accept
returns None, and the caller's row-by-row parser imports the file or names the bad line.
"""

from __future__ import annotations

import hashlib
from array import array
from contextlib import closing
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

from .. import crashpoints
from ..logs import log
from ..money import LEDGER_CONTEXT, USD_LIKE
from .chain import FORMAT_TAG, _field, _sql_field, _sql_text, encode_value, now_utc, sql_concat
from .instance import all_cores
from .schema import TABLES, all_columns
from .store import Head, Ledger
from .verify import _ahead

_NUMBER = r"^[0-9]{1,20}(\.[0-9]{1,18})?$"
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?$"
_SYMBOL = r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$"
_SCALE = Decimal("1E-18")
_ZERO_TEXT = format(Decimal(0).quantize(_SCALE), "f")
_BATCH = 100_000
#: Characters DuckDB's file readers treat as a pattern (or a home directory).
_GLOB = set("*?[]{}~")

#: Trades columns hashed before `cost`, and between `cost` and `total_usd`.
_COLUMNS = [c.name for c in TABLES["trades"]]
_BEFORE_COST = _COLUMNS[: _COLUMNS.index("cost")]
_AFTER_COST = _COLUMNS[_COLUMNS.index("cost") + 1 : _COLUMNS.index("total_usd")]
_KIND = {c.name: c.kind for c in TABLES["trades"]}
_OPTIONAL = ("order_id", "strategy", "notes")


def _fields_sql(names: list[str]) -> str:
    return sql_concat([_sql_field(_sql_text(_KIND[n], n)) for n in names])


def _typed_sql(names: list[str], source: str) -> str:
    """The file as typed trades columns (cost and total_usd come from Python)."""
    optional = {
        n: f"nullif(trim({n}), '')" if n in names else "NULL"
        for n in ("order_id", "strategy", "notes")
    }
    return f"""
        SELECT ord,
            timezone('UTC', CAST(trim(timestamp) AS TIMESTAMPTZ)) AS timestamp,
            lower(trim(exchange)) AS exchange,
            upper(trim(symbol)) AS symbol,
            split_part(upper(trim(symbol)), '/', 1) AS asset,
            split_part(upper(trim(symbol)), '/', 2) AS quote,
            lower(trim(side)) AS side,
            CAST(trim(amount) AS DECIMAL(38,18)) AS amount,
            CAST(trim(price) AS DECIMAL(38,18)) AS price,
            CAST(coalesce(fee, '0') AS DECIMAL(38,18)) AS fee,
            coalesce(upper(fee_currency),
                     CASE WHEN CAST(coalesce(fee, '0') AS DECIMAL(38,18)) <> 0
                          THEN split_part(upper(symbol), '/', 2) END) AS fee_currency,
            trim(trade_id) AS trade_id,
            {optional["order_id"]} AS order_id,
            CAST(NULL AS VARCHAR) AS client_order_id,
            {optional["strategy"]} AS strategy,
            '{source.replace("'", "''")}' AS source,
            {optional["notes"]} AS notes
        FROM _vhc_raw
    """


def _strictly_valid(ledger: Ledger, names: list[str]) -> bool:
    """Every row in the narrow form whose meaning SQL and the row parser agree on exactly."""
    text = r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$"  # printable ASCII, no edge spaces
    rules = [
        f"regexp_full_match(timestamp, '{_TIME}')",
        # The row parser's range (2009-01-03 .. now + 1 day); outside it, it names the line.
        # One cast: a text that is no time at all is NULL, which the coalesce below refuses.
        "TRY_CAST(timestamp AS TIMESTAMPTZ) "
        "BETWEEN TIMESTAMPTZ '2009-01-03 00:00:00+00' AND now() + INTERVAL 1 DAY",
        f"regexp_full_match(symbol, '{_SYMBOL}')",
        "side IN ('buy', 'sell', 'BUY', 'SELL', 'Buy', 'Sell')",
        f"regexp_full_match(amount, '{_NUMBER}')",
        "TRY_CAST(amount AS DECIMAL(38,18)) > 0",
        f"regexp_full_match(price, '{_NUMBER}')",
        "TRY_CAST(price AS DECIMAL(38,18)) > 0",
        f"(fee IS NULL OR regexp_full_match(fee, '{_NUMBER}'))",
        "(fee_currency IS NULL OR regexp_full_match(fee_currency, '^[A-Za-z0-9]+$'))",
        "regexp_full_match(exchange, '^[A-Za-z0-9_.-]+$')",
        f"regexp_full_match(trade_id, '{text}')",
        *(f"({n} IS NULL OR regexp_full_match({n}, '{text}'))" for n in names if n in _OPTIONAL),
    ]
    # NULL (an empty cell) must never slip through as "not bad": coalesce to false.
    bad = ledger.query(
        f"SELECT count(*) FROM _vhc_raw WHERE NOT coalesce({' AND '.join(rules)}, false)"
    )[0][0]
    return int(bad) == 0


def fast_import(
    ledger: Ledger, path: Path, names: list[str], source: str
) -> tuple[int, int, list[int]] | None:
    """Import a clean file in bulk: (rows in file, rows imported, their seqs), or None to fall back."""
    import duckdb

    con = ledger.con
    with all_cores(con):
        try:
            total = _stage(ledger, path, names, source)
        except duckdb.Error as exc:
            # Anything DuckDB cannot read or cast as expected goes to the row parser, which
            # names the line. Nothing has been written yet: only temp tables exist.
            log.debug("bulk import not used for %s: %s", path, exc)
            total = None
        try:
            if total is None:
                return None
            seqs = _chain_and_insert(ledger, con)
            return total, len(seqs), seqs
        finally:
            for table in ("_vhc_raw", "_vhc_typed", "_vhc_new"):
                con.execute(f"DROP TABLE IF EXISTS {table}")


def _stage(ledger: Ledger, path: Path, names: list[str], source: str) -> int | None:
    """Load, check and de-duplicate into `_vhc_new`; the file's row count, or None to fall back."""
    con = ledger.con
    resolved = path.resolve()
    if any(ch in str(resolved) for ch in _GLOB):
        return None  # DuckDB would expand it and read other files: Python reads this one
    con.execute("SET TimeZone = 'UTC'")  # a timestamp without an offset is UTC
    literal = str(resolved).replace("'", "''")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _vhc_raw AS SELECT row_number() OVER () AS ord, * "
        f"FROM read_csv('{literal}', header = true, all_varchar = true, strict_mode = true, "
        "parallel = false)"
    )
    described = [d[0] for d in con.execute("SELECT * FROM _vhc_raw LIMIT 0").description or []]
    if described[1:] != names or not _strictly_valid(ledger, names):
        return None
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vhc_typed AS {_typed_sql(names, source)}")
    # Each trade once (the usual file): no repeat, so no conflict, and one cheap pass says so
    # (a fifth of the CPU of counting the versions of every trade).
    total, keys = ledger.query(
        "SELECT count(*), count(DISTINCT (exchange, trade_id)) FROM _vhc_typed"
    )[0]
    conflicts = 0
    if keys != total:
        conflicts, keys, total = ledger.query(
            """SELECT count(*) FILTER (WHERE versions > 1), count(*), coalesce(sum(n), 0) FROM (
                   SELECT count(DISTINCT (timestamp, symbol, side, amount, price, fee,
                          fee_currency)) AS versions, count(*) AS n
                   FROM _vhc_typed GROUP BY exchange, trade_id)"""
        )[0]
    if conflicts:
        return None  # the row parser names both lines
    in_ledger, in_ledger_differs = ledger.query(
        """SELECT count(*), count(*) FILTER (WHERE
                 (t.timestamp, t.symbol, t.side, t.amount, t.price, t.fee, t.fee_currency)
                 IS DISTINCT FROM
                 (x.timestamp, x.symbol, x.side, x.amount, x.price, x.fee, x.fee_currency))
           FROM _vhc_typed t JOIN trades x
           ON x.exchange = t.exchange AND x.trade_id = t.trade_id"""
    )[0]
    if in_ledger_differs:
        return None  # a conflict with the ledger: the row parser names the line
    if not in_ledger and keys == total:
        # Every row is new and once (a first import): the typed table is the new rows as they
        # are, so it is renamed rather than copied by the anti-join (0.15 s a million rows).
        con.execute("ALTER TABLE _vhc_typed RENAME TO _vhc_new")
        return int(total)
    # First occurrence of each trade in the file, and only trades the ledger lacks. A file
    # without repeats (the usual case) needs no window over every row.
    first = (
        ""
        if keys == total
        else "QUALIFY row_number() OVER (PARTITION BY t.exchange, t.trade_id ORDER BY t.ord) = 1"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _vhc_new AS
           SELECT t.* FROM _vhc_typed t
           ANTI JOIN trades x ON x.exchange = t.exchange AND x.trade_id = t.trade_id {first}"""
    )
    return int(total)


#: The typed columns fetched with the canonical fields and inserted from Arrow as they came.
_TYPED = [n for n in _COLUMNS if n not in ("cost", "total_usd")]
#: The fetched batch: before, after, exact cost text, amount, price, then `usd` at this index.
_USD = 5
#: amount x price is exact in DuckDB when both have at most 9 fraction digits and are under
#: 1E10: DECIMAL(38,9) x DECIMAL(38,9) is a DECIMAL(38,18) that cannot round or overflow, and
#: its text is the canonical one (18 fraction digits), as Python's half-even quantize gives
#: for a product with no more digits. Other rows (18-decimal tokens) are multiplied in Python.
_EXACT = (
    "amount = round(amount, 9) AND price = round(price, 9) "
    "AND amount < 10000000000 AND price < 10000000000"
)
_PRODUCT = "CAST(amount AS DECIMAL(38,9)) * CAST(price AS DECIMAL(38,9))"


def _chain_and_insert(ledger: Ledger, con: Any) -> list[int]:
    """Hash the new rows in seq order and insert them in one statement.

    DuckDB builds and sorts the canonical fields in a thread (without the GIL), at most two
    batches ahead of this thread, which hashes them: only the sha256 chain is sequential.
    """
    head = ledger.head_for_append()
    stamp = now_utc()
    lead = FORMAT_TAG + _field("trades")
    recorded = _field(encode_value("timestamp", stamp))
    usd_like = ", ".join(f"'{c}'" for c in sorted(USD_LIKE))
    typed = ", ".join(f'"{n}"' for n in _TYPED)
    # One sorted read gives both the canonical fields (hashed here) and the typed values
    # (inserted back as they are): no join and no second sort to put the rows in seq order.
    result = con.sql(
        f"""SELECT {_fields_sql(_BEFORE_COST)}, {_fields_sql(_AFTER_COST)},
                   CASE WHEN {_EXACT} THEN CAST({_PRODUCT} AS VARCHAR) END,
                   CASE WHEN NOT ({_EXACT}) THEN CAST(amount AS VARCHAR) END,
                   CASE WHEN NOT ({_EXACT}) THEN CAST(price AS VARCHAR) END,
                   quote IN ({usd_like}), {typed}
            FROM _vhc_new ORDER BY ord"""
    )
    reader = result.to_arrow_reader(_BATCH)
    chained: list[Any] = []
    seq, prev = head.seq, head.hash
    sha256 = hashlib.sha256
    dec = Decimal
    # The hot loop: about a million iterations, so no helper calls. Every hash is 64 ASCII
    # characters, so its field is "64:<hash>"; seq is ASCII digits.
    with localcontext(LEDGER_CONTEXT), closing(_ahead(b for b in reader if b.num_rows)) as batches:
        for record in batches:
            first_seq, first_prev = seq + 1, prev
            hashes: list[str] = []
            costs: list[str] = []
            # Arrow columns turned into lists: a fraction of fetchmany's cost per row.
            columns = [record.column(i).to_pylist() for i in range(_USD + 1)]
            for before, after, cost_text, amount, price, usd in zip(*columns, strict=True):
                if cost_text is None:  # more digits than DuckDB's exact product takes
                    cost = (dec(amount) * dec(price)).quantize(_SCALE)
                    cost_text = format(cost, "f") if cost else _ZERO_TEXT
                cost_field = f"{len(cost_text)}:{cost_text}"
                seq += 1
                seq_text = str(seq)
                text = (
                    f"{lead}{len(seq_text)}:{seq_text}64:{prev}{recorded}{before}{cost_field}"
                    f"{after}{cost_field if usd else '~'}"
                )
                prev = sha256(text.encode()).hexdigest()
                hashes.append(prev)
                costs.append(cost_text)
            chained.append(_chain_table(record, first_seq, first_prev, hashes, costs))
    if seq == head.seq:
        return []
    _insert_tables(con, stamp, chained)
    del chained
    crashpoints.reach("ledger.import.mid_batch")  # rows inserted, transaction not committed
    ledger.set_head(Head(seq, prev))
    return list(range(head.seq + 1, seq + 1))


def _chain_table(
    record: Any, first_seq: int, first_prev: str, hashes: list[str], costs: list[str]
) -> Any:
    """One hashed batch as Arrow: its typed values as fetched, with seq, hashes and cost."""
    import pyarrow as pa

    rows = len(hashes)
    exact = record.column(2)
    columns = [record.column(_USD), *(record.column(_USD + 1 + i) for i in range(len(_TYPED)))]
    # Built from buffers: every hash is 64 ASCII characters, so one join and fixed offsets
    # (converting the list of strs cost 0.4 s a million rows here, contending with DuckDB's
    # thread for the GIL); the previous hashes are the same column shifted by one row.
    data = pa.py_buffer("".join(hashes).encode("ascii"))
    offsets = pa.py_buffer(array("i", range(0, 64 * rows + 1, 64)))
    row_hash = pa.StringArray.from_buffers(rows, offsets, data)
    prev_hash = pa.concat_arrays([pa.array([first_prev], pa.string()), row_hash.slice(0, rows - 1)])
    seqs = pa.py_buffer(array("q", range(first_seq, first_seq + rows)))
    columns += [
        pa.Array.from_buffers(pa.int64(), rows, [None, seqs]),
        prev_hash,
        row_hash,
        # DuckDB's exact products as fetched when it made every one of the batch's.
        exact if not exact.null_count else pa.array(costs, pa.string()),
    ]
    return pa.Table.from_arrays(
        columns, names=["usd", *_TYPED, "seq", "prev_hash", "row_hash", "cost_text"]
    )


def _insert_tables(con: Any, stamp: Any, tables: list[Any]) -> None:
    """Insert the hashed batches, in their order, in one statement (ten cost DuckDB a fifth more
    CPU, and more in its commit)."""
    import pyarrow as pa

    chain = pa.concat_tables(tables)
    con.register("_vhc_chain", chain)
    try:
        names = all_columns("trades")
        select = ", ".join(
            "CAST(? AS TIMESTAMP)" if n == "recorded_at"
            else "CAST(cost_text AS DECIMAL(38,18))" if n == "cost"
            else "CASE WHEN usd THEN CAST(cost_text AS DECIMAL(38,18)) END" if n == "total_usd"
            else f'"{n}"'
            for n in names
        )  # fmt: skip
        quoted = ", ".join(f'"{n}"' for n in names)
        # Arrow's rows go in in their order (DuckDB preserves insertion order): seq order.
        con.execute(f"INSERT INTO trades ({quoted}) SELECT {select} FROM _vhc_chain", [stamp])
    finally:
        con.unregister("_vhc_chain")

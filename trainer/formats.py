"""Reading a student's file into a table: CSV, TSV, JSONL, JSON or XLSX, in whatever encoding it came.

Bounded as the sandbox needs (``trainer.sandbox`` runs it in a child with CPU and memory limits): the
header is sniffed on its first characters only, rows are counted while streaming, an XLSX's members
are measured before they are expanded. Every problem names the row a student sees in a spreadsheet
(the header is row 1, the first example row 2; in JSONL the line number).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from core.spec import DataLimits

from .errors import DataError, Problem, problem


@dataclass
class Table:
    """The raw table read from a file, before any column is chosen."""

    columns: list[str]
    rows: list[dict[str, str]]
    row_numbers: list[int]  # what a student sees: spreadsheet row or JSONL line
    encoding: str
    fmt: str


# --- bytes to text -------------------------------------------------------------------------------

def decode(raw: bytes) -> tuple[str, str]:
    """Return (text, encoding name). UTF-8 (with or without BOM) first, then charset-normalizer."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(raw).best()
    if best is None:
        raise DataError([problem(
            "undecodable",
            "The file is not text in any encoding TinyTutor recognises",
            "Open it in a spreadsheet or editor and save it as 'CSV UTF-8'.",
        )])
    encoding = best.encoding
    # GB2312 and GBK are subsets of GB18030: decoding with the superset reads the rarer characters too.
    if encoding in ("gb2312", "gbk"):
        encoding = "gb18030"
    return raw.decode(encoding), encoding


def _looks_binary(raw: bytes) -> bool:
    head = raw[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a BOM is text
        return False
    return b"\x00" in head


def _control_share(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r")
    return bad / len(sample)


# --- formats ------------------------------------------------------------------------------------

SNIFF_CHARS = 1024  # of the header line: csv.Sniffer's regular expressions take minutes on 64 KB of ',"'


def _read_delimited(text: str, suffix: str, encoding: str, limits: DataLimits) -> Table:
    delimiter = "\t" if suffix == ".tsv" else ","
    with contextlib.suppress(csv.Error):
        delimiter = csv.Sniffer().sniff(text[:SNIFF_CHARS].split("\n", 1)[0] + "\n", delimiters=",\t;|").delimiter
    # a cell may be as long as the file (a text is cut to max_text_chars later, with a warning); csv's
    # default of 131,072 characters would stop a legal file with an error no student can read
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_bytes))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError([problem("empty", "The file is empty", "Upload a file with a header row and examples.")]) from None
    except csv.Error as exc:
        raise DataError([problem("bad_csv", f"The header row cannot be read as CSV: {exc}",
                                  "Save the file again as CSV UTF-8 from a spreadsheet.", rows=[1])]) from None
    columns = [h.strip() for h in header]
    problems: list[Problem] = []
    dupes = [c for c, n in Counter(columns).items() if n > 1 and c]
    if dupes:
        problems.append(problem("duplicate_column", f"The header names column '{dupes[0]}' twice",
                                 "Give every column its own name.", rows=[1]))
    rows, numbers, ragged = [], [], []
    # A spreadsheet shows one row per record (a quoted cell may span several lines), header = row 1.
    records = enumerate(reader, start=2)
    while True:
        try:
            start, values = next(records)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte: the row is named, reading stops there
            problems.append(problem("bad_csv", f"A row cannot be read as CSV: {exc}",
                                     "Save the file again as CSV UTF-8 from a spreadsheet.",
                                     rows=[reader.line_num]))
            break
        if not values or all(not v.strip() for v in values):
            continue
        if len(rows) >= limits.max_rows:  # counted while reading: a file of millions of rows stops here
            raise DataError([too_many_rows(f"more than {limits.max_rows:,}", limits)])
        if len(values) != len(columns):
            ragged.append(start)
            continue
        rows.append(dict(zip(columns, values, strict=True)))
        numbers.append(start)
    if ragged:
        problems.append(problem(
            "wrong_field_count",
            f"Some rows do not have {len(columns)} fields like the header",
            f"A text that contains the separator {delimiter!r} must be in double quotes; "
            "saving from a spreadsheet as CSV does this for you.",
            rows=ragged,
        ))
    if problems:
        raise DataError(problems)
    fmt = {",": "csv", "\t": "tsv"}.get(delimiter, f"csv (separator {delimiter!r})")
    return Table(columns, rows, numbers, encoding, fmt)


def _read_jsonl(text: str, encoding: str, limits: DataLimits) -> Table:
    rows, numbers, columns, bad = [], [], {}, []
    for lineno, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        if len(rows) >= limits.max_rows:
            raise DataError([too_many_rows(f"more than {limits.max_rows:,}", limits)])
        try:
            obj = json.loads(line, parse_int=str)  # as text: no int of 5,000 digits (Python refuses those)
        except (json.JSONDecodeError, RecursionError):  # RecursionError: nested deeper than Python parses
            bad.append(lineno)
            continue
        if not isinstance(obj, dict):
            bad.append(lineno)
            continue
        rows.append({k: _cell(v) for k, v in obj.items()})
        numbers.append(lineno)
        for k in obj:
            columns.setdefault(k, None)
    if bad:
        raise DataError([problem(
            "bad_json_line", "Some lines are not a JSON object",
            'Each line of a JSONL file must be one object, like {"text": "hi", "label": "greeting"}.',
            rows=bad,
        )])
    return Table(list(columns), rows, numbers, encoding, "jsonl")


def _read_json(text: str, encoding: str, limits: DataLimits) -> Table:
    try:
        data = json.loads(text, parse_int=str)  # as text: no int of 5,000 digits (Python refuses those)
    except json.JSONDecodeError as exc:
        raise DataError([problem("bad_json", f"The JSON file does not parse: {exc.msg}",
                                  "Check the file in a JSON validator, or upload CSV instead.",
                                  rows=[exc.lineno])]) from None
    except RecursionError:
        raise DataError([problem("bad_json", "The JSON file is nested too deeply to be a table",
                                  'Write it as [{"text": ..., "label": ...}, ...] or as JSONL.')]) from None
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise DataError([problem("bad_json", "A JSON upload must be a list of objects",
                                  'Write it as [{"text": ..., "label": ...}, ...] or as JSONL.')])
    if len(data) > limits.max_rows:
        raise DataError([too_many_rows(len(data), limits)])
    columns: dict[str, None] = {}
    for o in data:
        for k in o:
            columns.setdefault(k, None)
    rows = [{k: _cell(v) for k, v in o.items()} for o in data]
    return Table(list(columns), rows, list(range(1, len(rows) + 1)), encoding, "json")


XLSX_MEMBER_EXPANSION = 20  # the largest file inside a workbook, per byte of the byte limit
XLSX_EXPANSION = 50  # all of them together


def _read_xlsx(path: Path, limits: DataLimits) -> Table:
    """The first sheet, streamed: the declared size is checked first, and reading stops at the row limit,
    so a small, highly compressed file of millions of rows is refused in moments."""
    import zipfile

    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename: i.file_size for i in zf.infolist()}
    except zipfile.BadZipFile:
        members = {}
    if "xl/workbook.xml" not in members:
        raise DataError([problem("not_xlsx", "The file is a ZIP archive (or a damaged one), not an XLSX spreadsheet",
                                  "Unzip it and upload the CSV or XLSX file inside, or save the sheet again as .xlsx.")])
    # The XML of a table is rarely more than 20x its zip, and openpyxl reads the workbook, the styles and
    # every shared string whole before the first row: one member of 900 MB took 5.4 GB. The caller's
    # max_bytes is the class's quota where there is one, so a class with small files gets small caps.
    biggest = max(members, key=members.get)
    expanded = sum(members.values())
    if members[biggest] > XLSX_MEMBER_EXPANSION * limits.max_bytes or expanded > XLSX_EXPANSION * limits.max_bytes:
        raise DataError([problem("too_many_bytes", f"The spreadsheet expands to {expanded:,} bytes ({biggest}: "
                                                    f"{members[biggest]:,}), more than a table of at most "
                                                    f"{limits.max_bytes:,} bytes needs",
                                  "Upload fewer rows (as CSV UTF-8 if you can).")])
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged file
        raise DataError([problem("bad_xlsx", "The spreadsheet is damaged and cannot be opened",
                                  "Save it again from your spreadsheet program, or export it as CSV UTF-8.")]) from None
    try:
        ws = wb.worksheets[0]
        declared = ws.max_row  # from the sheet's <dimension>, when the writer recorded one
        if declared is not None and declared - 1 > limits.max_rows:
            raise DataError([too_many_rows(declared - 1, limits)])
        it = ws.iter_rows(values_only=True)
        try:
            header = next(it)
        except StopIteration:
            raise DataError([problem("empty", "The first sheet is empty",
                                      "Put a header row and examples on the first sheet.")]) from None
        columns = [_cell(h).strip() for h in header]
        while columns and not columns[-1]:
            columns.pop()
        rows, numbers = [], []
        for rownum, values in enumerate(it, start=2):
            cells = [_cell(v) for v in values[: len(columns)]]
            if all(not c.strip() for c in cells):
                continue
            if len(rows) >= limits.max_rows:
                raise DataError([too_many_rows(f"more than {limits.max_rows:,}", limits)])
            cells += [""] * (len(columns) - len(cells))
            rows.append(dict(zip(columns, cells, strict=True)))
            numbers.append(rownum)
    finally:
        wb.close()
    return Table(columns, rows, numbers, "xlsx", "xlsx")


def too_many_rows(n: int | str, limits: DataLimits) -> Problem:
    n = f"{n:,}" if isinstance(n, int) else n
    return problem("too_many_rows", f"The file has {n} examples; the limit is {limits.max_rows:,}",
                    "Upload a sample, or ask your instructor to raise the row limit.")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a spreadsheet stores label 1 as 1.0
    return str(value)


def read_table(path: str | Path, limits: DataLimits) -> Table:
    """Read any supported file into a Table; raise DataError for what cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise DataError([problem("no_file", f"There is no file at {path}", "Check the path.")])
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise DataError([problem(
            "too_many_bytes", f"The file is {size:,} bytes; the limit is {limits.max_bytes:,}",
            "Upload fewer rows, or ask your instructor to raise [data].max_bytes.")])
    if size == 0:
        raise DataError([problem("empty", "The file is empty", "Upload a file with a header row and examples.")])
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":  # a zip: XLSX, or an archive that openpyxl will refuse
        return _read_xlsx(path, limits)
    if suffix in (".xls",) or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise DataError([problem("old_excel", "Old .xls spreadsheets are not supported",
                                  "Save it as .xlsx or as CSV UTF-8.")])
    if _looks_binary(raw):
        raise DataError([problem("binary", "The file looks binary (an image, archive or program), not a table of texts",
                                  "Upload a CSV, TSV, JSONL or XLSX file with a text and a label column.")])
    text, encoding = decode(raw)
    if _control_share(text) > 0.01:
        raise DataError([problem("binary", "The file is mostly unreadable control characters, not a table of texts",
                                  "Upload a CSV, TSV, JSONL or XLSX file with a text and a label column.")])
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(text, encoding, limits)
    if suffix == ".json":
        return _read_json(text, encoding, limits)
    if suffix not in (".csv", ".tsv", ".txt") and text.lstrip().startswith("{"):
        return _read_jsonl(text, encoding, limits)
    return _read_delimited(text, suffix, encoding, limits)

"""Reading and checking a student's labelled file: CSV, TSV, JSONL, JSON or XLSX.

Every problem is reported with the row and column a student sees in a spreadsheet (the header is
row 1, the first example row 2; in JSONL the line number) and what to do about it. Errors stop
training; warnings go into the report and the advice.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from charset_normalizer import from_bytes

from core.errors import plural
from core.spec import DataLimits

from .errors import DataError, Problem

TEXT_NAMES = (
    "text", "texts", "sentence", "message", "content", "review", "comment", "body", "utterance",
    "query", "question", "document", "tweet", "text_a", "input",
    "文本", "内容", "句子", "评论", "留言", "消息", "问题", "语句", "內容", "評論", "訊息", "問題",
)
LABEL_NAMES = (
    "label", "labels", "class", "category", "intent", "target", "sentiment", "tag", "topic",
    "y", "gold", "output",
    "标签", "类别", "分类", "类型", "情感", "意图", "主题", "標籤", "類別", "分類", "類型", "意圖", "主題",
)
SPLIT_NAMES = ("split", "set", "fold", "划分", "数据集")
SPLIT_VALUES = {
    "train": "train", "training": "train", "训练": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation", "验证": "validation",
    "test": "test", "testing": "test", "测试": "test",
}
MAX_ROWS_SHOWN = 8  # a Problem lists at most this many rows, then counts the rest


@dataclass
class Table:
    """The raw table read from a file, before any column is chosen."""

    columns: list[str]
    rows: list[dict[str, str]]
    row_numbers: list[int]  # what a student sees: spreadsheet row or JSONL line
    encoding: str
    fmt: str


@dataclass
class Dataset:
    """Checked examples, ready to split. ``rows[i]`` is where ``texts[i]`` came from."""

    texts: list[str]
    labels: list[str]
    rows: list[int]
    text_column: str
    label_column: str
    encoding: str
    fmt: str
    split: list[str] | None = None  # from a split column, when the file has one
    warnings: list[Problem] = field(default_factory=list)

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items(), key=lambda kv: (-kv[1], kv[0])))

    def subset(self, idx: list[int]) -> Dataset:
        return Dataset(
            texts=[self.texts[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            rows=[self.rows[i] for i in idx],
            text_column=self.text_column,
            label_column=self.label_column,
            encoding=self.encoding,
            fmt=self.fmt,
        )

    def __len__(self) -> int:
        return len(self.texts)


def _problem(code, message, hint="", column=None, rows=()) -> Problem:
    rows = list(rows)
    return Problem(code=code, message=message, hint=hint, column=column,
                   rows=rows[:MAX_ROWS_SHOWN], count=len(rows))


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
        raise DataError([_problem(
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
        raise DataError([_problem("empty", "The file is empty", "Upload a file with a header row and examples.")]) from None
    except csv.Error as exc:
        raise DataError([_problem("bad_csv", f"The header row cannot be read as CSV: {exc}",
                                  "Save the file again as CSV UTF-8 from a spreadsheet.", rows=[1])]) from None
    columns = [h.strip() for h in header]
    problems: list[Problem] = []
    dupes = [c for c, n in Counter(columns).items() if n > 1 and c]
    if dupes:
        problems.append(_problem("duplicate_column", f"The header names column '{dupes[0]}' twice",
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
            problems.append(_problem("bad_csv", f"A row cannot be read as CSV: {exc}",
                                     "Save the file again as CSV UTF-8 from a spreadsheet.",
                                     rows=[reader.line_num]))
            break
        if not values or all(not v.strip() for v in values):
            continue
        if len(rows) >= limits.max_rows:  # counted while reading: a file of millions of rows stops here
            raise DataError([_too_many_rows(f"more than {limits.max_rows:,}", limits)])
        if len(values) != len(columns):
            ragged.append(start)
            continue
        rows.append(dict(zip(columns, values, strict=True)))
        numbers.append(start)
    if ragged:
        problems.append(_problem(
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
            raise DataError([_too_many_rows(f"more than {limits.max_rows:,}", limits)])
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
        raise DataError([_problem(
            "bad_json_line", "Some lines are not a JSON object",
            'Each line of a JSONL file must be one object, like {"text": "hi", "label": "greeting"}.',
            rows=bad,
        )])
    return Table(list(columns), rows, numbers, encoding, "jsonl")


def _read_json(text: str, encoding: str, limits: DataLimits) -> Table:
    try:
        data = json.loads(text, parse_int=str)  # as text: no int of 5,000 digits (Python refuses those)
    except json.JSONDecodeError as exc:
        raise DataError([_problem("bad_json", f"The JSON file does not parse: {exc.msg}",
                                  "Check the file in a JSON validator, or upload CSV instead.",
                                  rows=[exc.lineno])]) from None
    except RecursionError:
        raise DataError([_problem("bad_json", "The JSON file is nested too deeply to be a table",
                                  'Write it as [{"text": ..., "label": ...}, ...] or as JSONL.')]) from None
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise DataError([_problem("bad_json", "A JSON upload must be a list of objects",
                                  'Write it as [{"text": ..., "label": ...}, ...] or as JSONL.')])
    if len(data) > limits.max_rows:
        raise DataError([_too_many_rows(len(data), limits)])
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
        raise DataError([_problem("not_xlsx", "The file is a ZIP archive (or a damaged one), not an XLSX spreadsheet",
                                  "Unzip it and upload the CSV or XLSX file inside, or save the sheet again as .xlsx.")])
    # The XML of a table is rarely more than 20x its zip, and openpyxl reads the workbook, the styles and
    # every shared string whole before the first row: one member of 900 MB took 5.4 GB. The caller's
    # max_bytes is the class's quota where there is one, so a class with small files gets small caps.
    biggest = max(members, key=members.get)
    expanded = sum(members.values())
    if members[biggest] > XLSX_MEMBER_EXPANSION * limits.max_bytes or expanded > XLSX_EXPANSION * limits.max_bytes:
        raise DataError([_problem("too_many_bytes", f"The spreadsheet expands to {expanded:,} bytes ({biggest}: "
                                                    f"{members[biggest]:,}), more than a table of at most "
                                                    f"{limits.max_bytes:,} bytes needs",
                                  "Upload fewer rows (as CSV UTF-8 if you can).")])
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged file
        raise DataError([_problem("bad_xlsx", "The spreadsheet is damaged and cannot be opened",
                                  "Save it again from your spreadsheet program, or export it as CSV UTF-8.")]) from None
    try:
        ws = wb.worksheets[0]
        declared = ws.max_row  # from the sheet's <dimension>, when the writer recorded one
        if declared is not None and declared - 1 > limits.max_rows:
            raise DataError([_too_many_rows(declared - 1, limits)])
        it = ws.iter_rows(values_only=True)
        try:
            header = next(it)
        except StopIteration:
            raise DataError([_problem("empty", "The first sheet is empty",
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
                raise DataError([_too_many_rows(f"more than {limits.max_rows:,}", limits)])
            cells += [""] * (len(columns) - len(cells))
            rows.append(dict(zip(columns, cells, strict=True)))
            numbers.append(rownum)
    finally:
        wb.close()
    return Table(columns, rows, numbers, "xlsx", "xlsx")


def _too_many_rows(n: int | str, limits: DataLimits) -> Problem:
    n = f"{n:,}" if isinstance(n, int) else n
    return _problem("too_many_rows", f"The file has {n} examples; the limit is {limits.max_rows:,}",
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
        raise DataError([_problem("no_file", f"There is no file at {path}", "Check the path.")])
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise DataError([_problem(
            "too_many_bytes", f"The file is {size:,} bytes; the limit is {limits.max_bytes:,}",
            "Upload fewer rows, or ask your instructor to raise [data].max_bytes.")])
    if size == 0:
        raise DataError([_problem("empty", "The file is empty", "Upload a file with a header row and examples.")])
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":  # a zip: XLSX, or an archive that openpyxl will refuse
        return _read_xlsx(path, limits)
    if suffix in (".xls",) or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise DataError([_problem("old_excel", "Old .xls spreadsheets are not supported",
                                  "Save it as .xlsx or as CSV UTF-8.")])
    if _looks_binary(raw):
        raise DataError([_problem("binary", "The file looks binary (an image, archive or program), not a table of texts",
                                  "Upload a CSV, TSV, JSONL or XLSX file with a text and a label column.")])
    text, encoding = decode(raw)
    if _control_share(text) > 0.01:
        raise DataError([_problem("binary", "The file is mostly unreadable control characters, not a table of texts",
                                  "Upload a CSV, TSV, JSONL or XLSX file with a text and a label column.")])
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(text, encoding, limits)
    if suffix == ".json":
        return _read_json(text, encoding, limits)
    if suffix not in (".csv", ".tsv", ".txt") and text.lstrip().startswith("{"):
        return _read_jsonl(text, encoding, limits)
    return _read_delimited(text, suffix, encoding, limits)


# --- columns --------------------------------------------------------------------------------------

def _find_column(columns: list[str], names: tuple[str, ...]) -> str | None:
    folded = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in folded:
            return folded[name]
    return None


def find_text_column(columns: list[str]) -> str | None:
    """The column to classify in a file without labels (``/predict_file``): the one with the most usual
    text name (TEXT_NAMES, in its order, as ``choose_columns`` picks), else the only column."""
    return _find_column(columns, TEXT_NAMES) or (columns[0] if len(columns) == 1 else None)


def choose_columns(table: Table, text_column: str | None, label_column: str | None) -> tuple[str, str, list[Problem]]:
    """Pick the text and label columns: from the flags, by common names, or by shape for two columns."""
    problems, notes = [], []
    listed = ", ".join(f"'{c}'" for c in table.columns)
    for option, given in (("text_column", text_column), ("label_column", label_column)):
        if given is not None and given not in table.columns:
            problems.append(_problem("no_such_column", f"There is no column '{given}'; the columns are {listed}",
                                     f"Set {option} to one of them.", column=given, rows=[1]))
    if problems:
        raise DataError(problems)
    text_col = text_column or _find_column(table.columns, TEXT_NAMES)
    label_col = label_column or _find_column(table.columns, LABEL_NAMES)
    if (text_col is None or label_col is None) and len(table.columns) - (1 if _find_column(table.columns, SPLIT_NAMES) else 0) == 2:
        # Two unnamed columns: the one with longer cells is the text.
        cand = [c for c in table.columns if c.lower() not in SPLIT_NAMES]
        mean = {c: sum(len(r.get(c, "")) for r in table.rows) / max(1, len(table.rows)) for c in cand}
        guess_text = text_col or max(cand, key=lambda c: mean[c])
        guess_label = label_col or next(c for c in cand if c != guess_text)
        notes.append(_problem("guessed_columns",
                              f"Took '{guess_text}' as the text and '{guess_label}' as the label",
                              "If that is wrong, name the columns 'text' and 'label', or set text_column and label_column."))
        text_col, label_col = guess_text, guess_label
    if text_col is None:
        problems.append(_problem("no_text_column", f"No text column found; the columns are {listed}",
                                 "Name it 'text' (or 文本), or set text_column to its name.", rows=[1]))
    if label_col is None:
        problems.append(_problem("no_label_column", f"No label column found; the columns are {listed}",
                                 "Name it 'label' (or 标签), or set label_column to its name.", rows=[1]))
    if problems:
        raise DataError(problems)
    if text_col == label_col:
        raise DataError([_problem("same_column", f"'{text_col}' cannot be both the text and the label",
                                  "Pass two different columns.", rows=[1])])
    return text_col, label_col, notes


# --- the checks ------------------------------------------------------------------------------------

def normalise_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def load_dataset(path: str | Path, limits: DataLimits, text_column: str | None = None,
                 label_column: str | None = None, *, for_training: bool = True) -> Dataset:
    """Read and check a labelled file. Raises DataError listing every error; warnings ride along.

    ``for_training=False`` is for a separate validation file: it may hold one class, or few examples of one.
    """
    min_classes = 2 if for_training else 1
    table = read_table(path, limits)
    text_col, label_col, warnings = choose_columns(table, text_column, label_column)
    split_col = _find_column(table.columns, SPLIT_NAMES)
    errors: list[Problem] = []

    if len(table.rows) > limits.max_rows:
        raise DataError([_too_many_rows(len(table.rows), limits)])
    if not table.rows:
        raise DataError([_problem("no_rows", "The file has a header but no examples",
                                  "Add one example per row below the header.")])

    texts, labels, rows, splits = [], [], [], []
    empty_text, missing_label, too_long, bad_split = [], [], [], []
    for row, rownum in zip(table.rows, table.row_numbers, strict=True):
        text = (row.get(text_col) or "").strip()
        label = (row.get(label_col) or "").strip()
        if not text:
            empty_text.append(rownum)
        if not label:
            missing_label.append(rownum)
        if len(text) > limits.max_text_chars:
            too_long.append(rownum)
        split = None
        if split_col:
            split = SPLIT_VALUES.get((row.get(split_col) or "").strip().lower())
            if split is None:
                bad_split.append(rownum)
        if text and label:
            texts.append(text[: limits.max_text_chars])
            labels.append(label)
            rows.append(rownum)
            splits.append(split)
    if empty_text:
        errors.append(_problem("empty_text", "Some rows have no text", "Fill in the text or delete those rows.",
                               column=text_col, rows=empty_text))
    if missing_label:
        errors.append(_problem("missing_label", "Some rows have no label", "Give every example a label or delete those rows.",
                               column=label_col, rows=missing_label))
    # Long texts: one long document is normal (the model reads it in windows of max_length tokens); a column
    # where many cells are that long is almost surely not a column of messages.
    if too_long and len(too_long) > limits.long_text_error_share * len(table.rows):
        errors.append(_problem("text_too_long", f"{plural(len(too_long), 'text')} of {len(table.rows):,} are longer "
                                                f"than {limits.max_text_chars:,} characters",
                               "That many long cells usually means the wrong column was taken as the text: choose "
                               "the text column, or split long documents into passages.",
                               column=text_col, rows=too_long))
    elif too_long:
        warnings.append(_problem("long_documents", f"{plural(len(too_long), 'text')} {'is' if len(too_long) == 1 else 'are'} "
                                               f"longer than {limits.max_text_chars:,} characters",
                                 f"They are kept, cut to {limits.max_text_chars:,} characters (the model reads a long "
                                 "text in windows of max_length tokens).", column=text_col,
                                 rows=too_long))
    if bad_split:
        errors.append(_problem("bad_split_value", f"Column '{split_col}' has values other than train, validation and test",
                               "Use train, validation (or dev) and test, or delete the column to let TinyTutor split.",
                               column=split_col, rows=bad_split))

    # The same text under different labels: the model cannot learn both. A few such texts are label noise
    # (left out, with a warning that names them); a real share of the file is refused.
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        by_text[normalise_text(t)].append(i)
    conflicting = [idx for idx in by_text.values() if len({labels[i] for i in idx}) > 1]
    conflict_rows = sorted(rows[i] for idx in conflicting for i in idx)
    if conflict_rows and len(conflict_rows) > limits.conflict_error_share * len(texts):
        errors.append(_problem("conflicting_labels",
                               f"{plural(len(conflicting), 'text')} appear under different labels "
                               f"({len(conflict_rows):,} of {len(texts):,} rows)",
                               "Decide on one label for each text and delete the other rows.",
                               column=text_col, rows=conflict_rows))
    elif conflict_rows:
        warnings.append(_problem("conflicting_labels",
                                 f"{plural(len(conflicting), 'text')} appear{'s' if len(conflicting) == 1 else ''} "
                                 f"under different labels; {plural(len(conflict_rows), 'row')} left out of "
                                 "training and test",
                                 "Decide on one label for each text and delete the other rows to use them.",
                                 column=text_col, rows=conflict_rows))
        dropped = {i for idx in conflicting for i in idx}
        for key in [k for k, idx in by_text.items() if dropped.intersection(idx)]:
            del by_text[key]
    kept_idx = sorted(i for idx in by_text.values() for i in idx)
    counts = Counter(labels[i] for i in kept_idx)
    if counts and len(counts) < min_classes:
        only = next(iter(counts))
        errors.append(_problem("one_class", f"Every example has the label '{only}'",
                               "A classifier needs at least two classes: add examples of another label.",
                               column=label_col))
    if len(counts) > limits.max_classes:
        errors.append(_problem("too_many_classes", f"There are {len(counts)} different labels; the limit is {limits.max_classes}",
                               "Check that the label column is right (it may hold the texts), or merge rare labels.",
                               column=label_col))
    elif len(counts) >= min_classes and for_training:
        for label, n in counts.items():
            if n < limits.min_examples_per_class:
                errors.append(_problem(
                    "too_few_examples",
                    f"Label '{label}' has only {plural(n, 'example')}; each label needs at least {limits.min_examples_per_class}",
                    "Add examples of it, or remove those rows.",
                    column=label_col, rows=[rows[i] for i in kept_idx if labels[i] == label]))
    if errors:
        raise DataError(errors)

    dup_rows = sorted(rows[i] for idx in by_text.values() for i in idx[1:])
    if dup_rows:
        warnings.append(_problem("duplicates", f"{plural(len(dup_rows), 'row')} repeat{'s' if len(dup_rows) == 1 else ''} "
                                               "an earlier text with the same label",
                                 "Repeats can land in both training and test and make the score look better than it is; "
                                 "TinyTutor keeps one copy of each.", column=text_col, rows=dup_rows))
    few = [f"'{lab}' ({n})" for lab, n in counts.items() if n < limits.few_examples_warning]
    if few:
        warnings.append(_problem("few_examples", f"Labels with fewer than {limits.few_examples_warning} examples: {', '.join(few)}",
                                 "Their scores will be noisy; add examples to them first.", column=label_col))
    most, least = max(counts.values()), min(counts.values())
    if least and most / least >= limits.imbalance_warning_ratio:
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        warnings.append(_problem("imbalance", f"Classes are imbalanced: '{big}' has {most} examples, '{small}' only {least}",
                                 "Accuracy will flatter the model; read macro-F1 and add examples to the small classes.",
                                 column=label_col))

    # Keep one copy of exact repeats so they cannot leak from training into test.
    keep = sorted(idx[0] for idx in by_text.values())
    ds = Dataset(
        texts=[texts[i] for i in keep], labels=[labels[i] for i in keep], rows=[rows[i] for i in keep],
        text_column=text_col, label_column=label_col, encoding=table.encoding, fmt=table.fmt,
        split=[splits[i] for i in keep] if split_col else None, warnings=warnings,
    )
    return ds


# --- splitting --------------------------------------------------------------------------------------

@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset
    source: str  # "stratified" | "split column" | "validation file"


def split_dataset(ds: Dataset, limits: DataLimits, seed: int, validation: Dataset | None = None) -> Splits:
    """Stratified, seeded train/validation/test split, unless the file or a second file fixes it."""
    from sklearn.model_selection import train_test_split

    labels = set(ds.labels)
    if ds.split is not None:
        parts = {name: [i for i, s in enumerate(ds.split) if s == name] for name in ("train", "validation", "test")}
        if not parts["train"] or not parts["test"]:
            raise DataError([_problem("split_missing", "The split column needs both train and test rows",
                                      "Mark some rows 'test', or delete the split column to let TinyTutor split.",
                                      column=None)])
        train_counts = Counter(ds.labels[i] for i in parts["train"])
        thin = sorted(lab for lab in labels if train_counts[lab] < 2)
        if thin:
            raise DataError([_problem("split_too_small", f"Labels with fewer than 2 'train' rows: {', '.join(thin)}",
                                      "Every label needs training rows (and some to hold out for validation): "
                                      "mark more of its rows 'train'.", column=ds.label_column)])
        if not parts["validation"]:
            tr, va = train_test_split(parts["train"], test_size=limits.val_fraction / (1 - limits.test_fraction),
                                      random_state=seed, stratify=[ds.labels[i] for i in parts["train"]])
            parts["train"], parts["validation"] = sorted(tr), sorted(va)
        unseen = {ds.labels[i] for i in parts["test"] + parts["validation"]} - {ds.labels[i] for i in parts["train"]}
        if unseen:
            raise DataError([_problem("label_not_in_train", f"Labels only in validation/test rows: {', '.join(sorted(unseen))}",
                                      "Every label needs training rows.", column=ds.label_column)])
        return Splits(ds.subset(parts["train"]), ds.subset(parts["validation"]), ds.subset(parts["test"]), "split column")

    idx = list(range(len(ds)))
    n_test = max(len(labels), round(limits.test_fraction * len(ds)))
    rest, test = train_test_split(idx, test_size=n_test, random_state=seed, stratify=ds.labels)
    if validation is not None:
        unseen = set(validation.labels) - labels
        if unseen:
            raise DataError([_problem("label_not_in_train", f"The validation file has labels the training file lacks: {', '.join(sorted(unseen))}",
                                      "Use the same label names in both files.", column=validation.label_column,
                                      rows=[r for r, lab in zip(validation.rows, validation.labels, strict=True) if lab in unseen])])
        return Splits(ds.subset(sorted(rest)), validation, ds.subset(sorted(test)), "validation file")
    n_val = max(len(labels), round(limits.val_fraction * len(ds)))
    rest_labels = [ds.labels[i] for i in rest]
    train, val = train_test_split(rest, test_size=n_val, random_state=seed, stratify=rest_labels)
    return Splits(ds.subset(sorted(train)), ds.subset(sorted(val)), ds.subset(sorted(test)), "stratified")

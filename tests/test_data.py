"""Reading and checking uploads: formats, encodings, columns, and one test per error a student can make."""

import json

import pytest
from helpers import synthetic_rows, write_csv

from core.spec import DataLimits
from trainer.data import load_dataset, split_dataset
from trainer.errors import DataError

LIMITS = DataLimits()


def _rows(n=6):
    return [(f"great match today number {i}", "sports") for i in range(n)] + \
           [(f"lovely soup for dinner number {i}", "food") for i in range(n)]


def _codes(exc: DataError) -> list[str]:
    return [p.code for p in exc.problems]


def _error(path, limits=LIMITS, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(path, limits, **kw)
    return info.value


# --- formats and encodings ------------------------------------------------------------------------

def test_reads_csv_and_finds_columns(tmp_path):
    ds = load_dataset(write_csv(tmp_path / "a.csv", _rows()), LIMITS)
    assert (ds.text_column, ds.label_column, ds.fmt, ds.encoding) == ("text", "label", "csv", "utf-8")
    assert ds.label_counts == {"food": 6, "sports": 6}
    assert ds.rows[0] == 2  # the header is row 1


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030"), ("big5", "big5"), ("utf-16", "utf_16"),
])
def test_detects_encodings_of_chinese_files(tmp_path, encoding, expected):
    rows = [("今天的比赛非常精彩，我们队赢了" + "！" * i, "体育") for i in range(6)] + \
           [("这家餐厅的汤很好喝，晚饭吃得很开心" + "。" * i, "美食") for i in range(6)]
    if encoding == "big5":
        rows = [("今天的比賽非常精彩，我們隊贏了" + "！" * i, "體育") for i in range(6)] + \
               [("這家餐廳的湯很好喝，晚飯吃得很開心" + "。" * i, "美食") for i in range(6)]
    header = ("文本", "標籤") if encoding == "big5" else ("文本", "标签")
    path = write_csv(tmp_path / "zh.csv", rows, header=header, encoding=encoding)
    ds = load_dataset(path, LIMITS)
    assert ds.encoding.replace("-", "_").lower().startswith(expected.replace("-", "_").lower()[:5])
    assert (ds.text_column, ds.label_column) == header
    assert ds.texts[0] == rows[0][0]  # decoded to the very same characters


@pytest.mark.parametrize("delimiter", ["\t", ";", "|"])
def test_detects_delimiter(tmp_path, delimiter):
    path = write_csv(tmp_path / "a.txt", _rows(), header=("Sentence", "Category"), delimiter=delimiter)
    ds = load_dataset(path, LIMITS)
    assert (ds.text_column, ds.label_column, len(ds)) == ("Sentence", "Category", 12)


def test_reads_jsonl_and_xlsx(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps({"message": t, "intent": y}) for t, y in _rows()) + "\n")
    ds = load_dataset(p, LIMITS)
    assert (ds.fmt, ds.text_column, ds.label_column, len(ds)) == ("jsonl", "message", "intent", 12)

    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["text", "label"])
    for i, (t, _) in enumerate(_rows()):
        wb.active.append([t, i % 2])  # numeric labels come back as 0/1, not 0.0/1.0
    wb.save(tmp_path / "a.xlsx")
    ds = load_dataset(tmp_path / "a.xlsx", LIMITS)
    assert ds.fmt == "xlsx" and set(ds.labels) == {"0", "1"}


def test_columns_from_flags_and_guess_for_two_unnamed_columns(tmp_path):
    path = write_csv(tmp_path / "a.csv", _rows(), header=("words", "kind"))
    ds = load_dataset(path, LIMITS)  # two columns: the longer one is the text
    assert (ds.text_column, ds.label_column) == ("words", "kind")
    assert any(w.code == "guessed_columns" for w in ds.warnings)
    rows = [(t, y, "x") for t, y in _rows()]
    path = write_csv(tmp_path / "b.csv", rows, header=("words", "kind", "note"))
    ds = load_dataset(path, LIMITS, text_column="words", label_column="kind")
    assert len(ds) == 12


# --- errors: each names the row and column and says what to do --------------------------------------

def test_no_such_column(tmp_path):
    path = write_csv(tmp_path / "a.csv", _rows())
    err = _error(path, text_column="body")
    assert _codes(err) == ["no_such_column"]
    assert "'body'" in str(err) and "'text', 'label'" in str(err) and "Set text_column to one of them" in str(err)


def test_no_recognisable_columns(tmp_path):
    path = write_csv(tmp_path / "a.csv", [(t, y, "1") for t, y in _rows()], header=("a", "b", "c"))
    err = _error(path)
    assert set(_codes(err)) == {"no_text_column", "no_label_column"}


def test_empty_text_and_missing_label_name_their_rows(tmp_path):
    rows = _rows()
    rows[2] = ("", "sports")
    rows[5] = ("a text without label", "")
    err = _error(write_csv(tmp_path / "a.csv", rows))
    by_code = {p.code: p for p in err.problems}
    assert by_code["empty_text"].rows == [4] and by_code["empty_text"].column == "text"
    assert by_code["missing_label"].rows == [7] and by_code["missing_label"].column == "label"
    assert "row 4" in str(by_code["empty_text"])


def test_one_class(tmp_path):
    err = _error(write_csv(tmp_path / "a.csv", [(f"text {i}", "only") for i in range(10)]))
    assert _codes(err) == ["one_class"] and "'only'" in str(err)


def test_class_with_too_few_examples(tmp_path):
    rows = _rows() + [("a rare one", "rare"), ("another rare one", "rare")]
    err = _error(write_csv(tmp_path / "a.csv", rows))
    assert _codes(err) == ["too_few_examples"]
    assert err.problems[0].rows == [14, 15] and "'rare' has only 2 examples" in str(err)


def test_too_many_classes(tmp_path):
    rows = [(f"text {i}", f"label {i}") for i in range(60)]
    err = _error(write_csv(tmp_path / "a.csv", rows))
    assert "too_many_classes" in _codes(err) and "limit is 50" in str(err)


def test_row_and_byte_limits(tmp_path):
    path = write_csv(tmp_path / "a.csv", _rows())
    err = _error(path, DataLimits(max_rows=10))
    assert _codes(err) == ["too_many_rows"] and "limit is 10" in str(err)
    err = _error(path, DataLimits(max_bytes=100))
    assert _codes(err) == ["too_many_bytes"] and "limit is 100" in str(err)


def test_binary_and_empty_files(tmp_path):
    png = tmp_path / "cat.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert _codes(_error(png)) == ["binary"]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _codes(_error(empty)) == ["empty"]
    header_only = tmp_path / "h.csv"
    header_only.write_text("text,label\n")
    assert _codes(_error(header_only)) == ["no_rows"]


def test_same_text_under_two_labels(tmp_path):
    rows = _rows() + [("Great  match today number 1", "food")]  # same text up to case and spaces
    err = _error(write_csv(tmp_path / "a.csv", rows))
    assert _codes(err) == ["conflicting_labels"]
    assert err.problems[0].rows == [3, 14]


def test_unquoted_separator_names_the_row(tmp_path):
    path = tmp_path / "a.csv"
    lines = ["text,label"] + [f"{t},{y}" for t, y in _rows()]
    lines[4] = "well, that was a great match,sports"
    path.write_text("\n".join(lines) + "\n")
    err = _error(path)
    assert _codes(err) == ["wrong_field_count"] and err.problems[0].rows == [5]
    assert "double quotes" in str(err)


def test_row_numbers_are_spreadsheet_rows_even_with_multi_line_cells(tmp_path):
    path = tmp_path / "a.csv"
    body = [f'"{t}\nsecond line\nthird line",{y}' for t, y in _rows()]
    body[3] = '"",sports'  # record 4 below the header = spreadsheet row 5, although it is file line 11
    path.write_text("text,label\n" + "\n".join(body) + "\n")
    err = _error(path)
    assert _codes(err) == ["empty_text"] and err.problems[0].rows == [5]


def test_nested_json_and_jsonl_are_refused_with_a_reason(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "a.json").write_text(deep)
    assert _codes(_error(tmp_path / "a.json")) == ["bad_json"]
    lines = [json.dumps({"text": t, "label": y}) for t, y in _rows()]
    lines.insert(2, '{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": "x"}')
    (tmp_path / "a.jsonl").write_text("\n".join(lines))
    err = _error(tmp_path / "a.jsonl")
    assert _codes(err) == ["bad_json_line"] and err.problems[0].rows == [3]


def test_a_huge_spreadsheet_is_refused_from_its_declared_size_and_a_renamed_zip_is_named(tmp_path):
    import time
    import zipfile

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["text", "label"])
    for t, y in _rows():
        ws.append([t, y])
    ws["A200000"] = "far away"  # declares 200,000 rows
    wb.save(tmp_path / "big.xlsx")
    started = time.monotonic()
    err = _error(tmp_path / "big.xlsx", DataLimits(max_rows=1000))
    assert _codes(err) == ["too_many_rows"] and "199,999" in str(err)
    assert time.monotonic() - started < 5
    with zipfile.ZipFile(tmp_path / "photos.xlsx", "w") as zf:
        zf.writestr("cat.txt", "not a sheet")
    err = _error(tmp_path / "photos.xlsx")
    assert _codes(err) == ["not_xlsx"] and "Exception" not in str(err)


def test_one_long_document_is_a_warning_a_column_of_them_an_error(tmp_path):
    rows = _rows(40)
    rows[7] = ("word " * 6000, "sports")  # 30,000 characters: a long article, cut and kept
    ds = load_dataset(write_csv(tmp_path / "a.csv", rows), LIMITS)
    long = [w for w in ds.warnings if w.code == "long_documents"][0]
    assert long.rows == [9] and "1 text is longer than 20,000" in long.message
    assert len(ds) == 80 and max(len(t) for t in ds.texts) == 20_000
    rows = [(str(i) + " word" * 6000, y) for i, (_, y) in enumerate(_rows(40))]
    err = _error(write_csv(tmp_path / "b.csv", rows))
    assert _codes(err) == ["text_too_long"] and "wrong column" in str(err)


def test_a_few_conflicting_texts_are_left_out_with_a_warning(tmp_path):
    rows = _rows(100) + [("Great  match today number 1", "food"), ("lovely soup for dinner number 5", "sports")]
    ds = load_dataset(write_csv(tmp_path / "a.csv", rows), LIMITS)
    w = [w for w in ds.warnings if w.code == "conflicting_labels"][0]
    assert "2 texts appear under different labels; 4 rows left out" in w.message
    assert w.rows == [3, 107, 202, 203]
    assert len(ds) == 198 and "great match today number 1" not in [t.lower() for t in ds.texts]
    err = _error(write_csv(tmp_path / "a.csv", rows), DataLimits(conflict_error_share=0.01))
    assert _codes(err) == ["conflicting_labels"]


def test_every_chatterbot_topic_with_its_cross_topic_repeats_can_be_trained_on(tmp_path):
    import importlib.resources

    import yaml

    from trainer.examples import english_topics

    root = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    rows = []
    for topic in english_topics():
        for conversation in yaml.safe_load((root / f"{topic}.yml").read_text(encoding="utf-8"))["conversations"]:
            rows += [(" ".join(str(line).split()), topic) for line in conversation if len(str(line)) >= 3]
    ds = load_dataset(write_csv(tmp_path / "all.csv", rows), DataLimits(min_examples_per_class=2))
    codes = {w.code: w for w in ds.warnings}
    assert "conflicting_labels" in codes and codes["conflicting_labels"].count >= 2
    assert len(ds.label_counts) == len(english_topics())


# --- warnings ---------------------------------------------------------------------------------------

def test_duplicates_and_imbalance_are_warnings(tmp_path):
    rows = [(f"great match today number {i}", "sports") for i in range(60)] + \
           [(f"lovely soup number {i}", "food") for i in range(5)] + [("great match today number 3", "sports")]
    ds = load_dataset(write_csv(tmp_path / "a.csv", rows), LIMITS)
    codes = {w.code: w for w in ds.warnings}
    assert codes["duplicates"].rows == [67]
    assert "imbalance" in codes and "few_examples" in codes
    assert len(ds) == 65  # the repeat is kept once, so it cannot sit in both train and test


# --- splitting --------------------------------------------------------------------------------------

def test_stratified_seeded_split_without_overlap(tmp_path):
    ds = load_dataset(write_csv(tmp_path / "a.csv", synthetic_rows(40)), LIMITS)
    a = split_dataset(ds, LIMITS, seed=1)
    b = split_dataset(ds, LIMITS, seed=1)
    c = split_dataset(ds, LIMITS, seed=2)
    assert a.test.texts == b.test.texts and a.test.texts != c.test.texts
    sets = [set(a.train.texts), set(a.validation.texts), set(a.test.texts)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(len(s) for s in sets) == len(ds)
    assert len(a.test) == 24 and {a.test.labels.count(y) for y in set(ds.labels)} == {8}


def test_split_column_and_validation_file(tmp_path):
    rows = [(t, y, "test" if i % 5 == 0 else "train") for i, (t, y) in enumerate(synthetic_rows(20))]
    ds = load_dataset(write_csv(tmp_path / "a.csv", rows, header=("text", "label", "split")), LIMITS)
    s = split_dataset(ds, LIMITS, seed=0)
    assert s.source == "split column" and len(s.test) == 12

    # a label whose rows are (almost) all marked test cannot be trained
    rows = [(t, y, "test" if y == "food" and i % 20 else "train") for i, (t, y) in enumerate(synthetic_rows(20))]
    ds = load_dataset(write_csv(tmp_path / "c.csv", rows, header=("text", "label", "split")), LIMITS)
    with pytest.raises(DataError, match="fewer than 2 'train' rows: food"):
        split_dataset(ds, LIMITS, seed=0)

    ds = load_dataset(write_csv(tmp_path / "t.csv", synthetic_rows(20)), LIMITS)
    val = load_dataset(write_csv(tmp_path / "v.csv", synthetic_rows(5, seed=9)), LIMITS)
    s = split_dataset(ds, LIMITS, seed=0, validation=val)
    assert s.source == "validation file" and s.validation.texts == val.texts

    bad_rows = [(t, "music" if y == "food" else y) for t, y in _rows()]
    bad = load_dataset(write_csv(tmp_path / "v2.csv", bad_rows), LIMITS)
    with pytest.raises(DataError, match="labels the training file lacks: music") as info:
        split_dataset(ds, LIMITS, seed=0, validation=bad)
    assert info.value.problems[0].rows[0] == 8

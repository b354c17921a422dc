"""Checking a student's labelled file (read by ``trainer.formats``): its columns, its rows, its split.

Every problem is reported with the row and column a student sees in a spreadsheet (the header is
row 1, the first example row 2; in JSONL the line number) and what to do about it. Errors stop
training; warnings go into the report and the advice.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import plural
from core.spec import DataLimits

from .errors import DataError, Problem, problem
from .formats import Table, read_table, too_many_rows

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
            problems.append(problem("no_such_column", f"There is no column '{given}'; the columns are {listed}",
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
        notes.append(problem("guessed_columns",
                              f"Took '{guess_text}' as the text and '{guess_label}' as the label",
                              "If that is wrong, name the columns 'text' and 'label', or set text_column and label_column."))
        text_col, label_col = guess_text, guess_label
    if text_col is None:
        problems.append(problem("no_text_column", f"No text column found; the columns are {listed}",
                                 "Name it 'text' (or 文本), or set text_column to its name.", rows=[1]))
    if label_col is None:
        problems.append(problem("no_label_column", f"No label column found; the columns are {listed}",
                                 "Name it 'label' (or 标签), or set label_column to its name.", rows=[1]))
    if problems:
        raise DataError(problems)
    if text_col == label_col:
        raise DataError([problem("same_column", f"'{text_col}' cannot be both the text and the label",
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
        raise DataError([too_many_rows(len(table.rows), limits)])
    if not table.rows:
        raise DataError([problem("no_rows", "The file has a header but no examples",
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
        errors.append(problem("empty_text", "Some rows have no text", "Fill in the text or delete those rows.",
                               column=text_col, rows=empty_text))
    if missing_label:
        errors.append(problem("missing_label", "Some rows have no label", "Give every example a label or delete those rows.",
                               column=label_col, rows=missing_label))
    # Long texts: one long document is normal (the model reads it in windows of max_length tokens); a column
    # where many cells are that long is almost surely not a column of messages.
    if too_long and len(too_long) > limits.long_text_error_share * len(table.rows):
        errors.append(problem("text_too_long", f"{plural(len(too_long), 'text')} of {len(table.rows):,} are longer "
                                                f"than {limits.max_text_chars:,} characters",
                               "That many long cells usually means the wrong column was taken as the text: choose "
                               "the text column, or split long documents into passages.",
                               column=text_col, rows=too_long))
    elif too_long:
        warnings.append(problem("long_documents", f"{plural(len(too_long), 'text')} {'is' if len(too_long) == 1 else 'are'} "
                                               f"longer than {limits.max_text_chars:,} characters",
                                 f"They are kept, cut to {limits.max_text_chars:,} characters (the model reads a long "
                                 "text in windows of max_length tokens).", column=text_col,
                                 rows=too_long))
    if bad_split:
        errors.append(problem("bad_split_value", f"Column '{split_col}' has values other than train, validation and test",
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
        errors.append(problem("conflicting_labels",
                               f"{plural(len(conflicting), 'text')} appear under different labels "
                               f"({len(conflict_rows):,} of {len(texts):,} rows)",
                               "Decide on one label for each text and delete the other rows.",
                               column=text_col, rows=conflict_rows))
    elif conflict_rows:
        warnings.append(problem("conflicting_labels",
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
        errors.append(problem("one_class", f"Every example has the label '{only}'",
                               "A classifier needs at least two classes: add examples of another label.",
                               column=label_col))
    if len(counts) > limits.max_classes:
        errors.append(problem("too_many_classes", f"There are {len(counts)} different labels; the limit is {limits.max_classes}",
                               "Check that the label column is right (it may hold the texts), or merge rare labels.",
                               column=label_col))
    elif len(counts) >= min_classes and for_training:
        for label, n in counts.items():
            if n < limits.min_examples_per_class:
                errors.append(problem(
                    "too_few_examples",
                    f"Label '{label}' has only {plural(n, 'example')}; each label needs at least {limits.min_examples_per_class}",
                    "Add examples of it, or remove those rows.",
                    column=label_col, rows=[rows[i] for i in kept_idx if labels[i] == label]))
    if errors:
        raise DataError(errors)

    dup_rows = sorted(rows[i] for idx in by_text.values() for i in idx[1:])
    if dup_rows:
        warnings.append(problem("duplicates", f"{plural(len(dup_rows), 'row')} repeat{'s' if len(dup_rows) == 1 else ''} "
                                               "an earlier text with the same label",
                                 "Repeats can land in both training and test and make the score look better than it is; "
                                 "TinyTutor keeps one copy of each.", column=text_col, rows=dup_rows))
    few = [f"'{lab}' ({n})" for lab, n in counts.items() if n < limits.few_examples_warning]
    if few:
        warnings.append(problem("few_examples", f"Labels with fewer than {limits.few_examples_warning} examples: {', '.join(few)}",
                                 "Their scores will be noisy; add examples to them first.", column=label_col))
    most, least = max(counts.values()), min(counts.values())
    if least and most / least >= limits.imbalance_warning_ratio:
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        warnings.append(problem("imbalance", f"Classes are imbalanced: '{big}' has {most} examples, '{small}' only {least}",
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
            raise DataError([problem("split_missing", "The split column needs both train and test rows",
                                      "Mark some rows 'test', or delete the split column to let TinyTutor split.",
                                      column=None)])
        train_counts = Counter(ds.labels[i] for i in parts["train"])
        thin = sorted(lab for lab in labels if train_counts[lab] < 2)
        if thin:
            raise DataError([problem("split_too_small", f"Labels with fewer than 2 'train' rows: {', '.join(thin)}",
                                      "Every label needs training rows (and some to hold out for validation): "
                                      "mark more of its rows 'train'.", column=ds.label_column)])
        if not parts["validation"]:
            tr, va = train_test_split(parts["train"], test_size=limits.val_fraction / (1 - limits.test_fraction),
                                      random_state=seed, stratify=[ds.labels[i] for i in parts["train"]])
            parts["train"], parts["validation"] = sorted(tr), sorted(va)
        unseen = {ds.labels[i] for i in parts["test"] + parts["validation"]} - {ds.labels[i] for i in parts["train"]}
        if unseen:
            raise DataError([problem("label_not_in_train", f"Labels only in validation/test rows: {', '.join(sorted(unseen))}",
                                      "Every label needs training rows.", column=ds.label_column)])
        return Splits(ds.subset(parts["train"]), ds.subset(parts["validation"]), ds.subset(parts["test"]), "split column")

    idx = list(range(len(ds)))
    n_test = max(len(labels), round(limits.test_fraction * len(ds)))
    rest, test = train_test_split(idx, test_size=n_test, random_state=seed, stratify=ds.labels)
    if validation is not None:
        unseen = set(validation.labels) - labels
        if unseen:
            raise DataError([problem("label_not_in_train", f"The validation file has labels the training file lacks: {', '.join(sorted(unseen))}",
                                      "Use the same label names in both files.", column=validation.label_column,
                                      rows=[r for r, lab in zip(validation.rows, validation.labels, strict=True) if lab in unseen])])
        return Splits(ds.subset(sorted(rest)), validation, ds.subset(sorted(test)), "validation file")
    n_val = max(len(labels), round(limits.val_fraction * len(ds)))
    rest_labels = [ds.labels[i] for i in rest]
    train, val = train_test_split(rest, test_size=n_val, random_state=seed, stratify=rest_labels)
    return Splits(ds.subset(sorted(train)), ds.subset(sorted(val)), ds.subset(sorted(test)), "stratified")


def stratified_share(labels, fraction: float, rng, *, leave_one: bool = False) -> list[int]:
    """Indices (sorted) of a stratified ``fraction`` of ``labels``, at least one example of every label;
    ``rng`` a numpy Generator (seeded by the caller, so a run is repeatable). ``leave_one``: also leave at
    least one example of every label out (a label with a single example is then left out whole)."""
    import numpy as np

    y = np.asarray(labels)
    keep = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        size = max(1, round(len(idx) * fraction))
        if leave_one:
            size = min(size, len(idx) - 1)
        keep.extend(rng.choice(idx, size=size, replace=False).tolist())
    return sorted(keep)


def share_of_training(splits: Splits, percent: int, seed: int) -> Splits:
    """The splits with ``percent`` % of the training split kept (stratified, seeded): the same validation
    and test splits, so runs on different shares of the data are scored on the same examples (a learning
    curve of the whole recipe, ``train_share``)."""
    import numpy as np

    if percent >= 100:
        return splits
    keep = stratified_share(splits.train.labels, percent / 100, np.random.default_rng(seed))
    return Splits(splits.train.subset(keep), splits.validation, splits.test, splits.source)

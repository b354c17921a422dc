"""The names of the files a run writes beside its model: one place, importable without the ML (the
service finds a report's files by them; ``trainer.pipeline`` writes them)."""

CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "training_curve.png"
LEARNING_CURVE_PNG = "learning_curve.png"  # only when the training split allowed a learning curve
TEST_EXAMPLES = "test_examples.json"  # every test example with its prediction (a confusion cell's contents)
SUSPECTS_CSV = "suspect_rows.csv"
# What a report keeps of a run (the queue copies them: a report outlives its model); the first two always.
REPORT_FILES = (CONFUSION_PNG, CURVE_PNG, LEARNING_CURVE_PNG, TEST_EXAMPLES)

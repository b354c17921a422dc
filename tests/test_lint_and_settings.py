"""Tokenizer coverage warnings on the embedded model's real vocabulary, and config.toml validation."""

from pathlib import Path

import pytest
from helpers import write_csv

from core.settings import ConfigError, load_settings
from core.spec import DataLimits
from trainer.data import load_dataset
from trainer.lint import tokenizer_warnings
from trainer.models import load_tokenizer, resolve_base

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return load_tokenizer(resolve_base("minilm-l6"))


def test_chinese_through_an_english_vocabulary_is_flagged(tmp_path, minilm_tokenizer):
    rows = [("我非常喜欢这部电影，演员的表演很精彩" + "！" * i, "正面") for i in range(6)] + \
           [("这部电影太无聊了，浪费了我的时间" + "。" * i, "负面") for i in range(6)]
    ds = load_dataset(write_csv(tmp_path / "zh.csv", rows, header=("文本", "标签")), DataLimits())
    warnings, stats = tokenizer_warnings(ds, minilm_tokenizer, 128, "minilm-l6")
    assert stats["unk_char_share"] > 0.5
    (w,) = [w for w in warnings if w.code == "tokenizer_coverage"]
    assert "Chinese" in w.message and "[UNK]" in w.message and "choose it as the base" in w.hint


def test_english_is_covered_and_long_texts_are_named(tmp_path, minilm_tokenizer):
    rows = [("what a great match the team played today", "sports")] * 1 + \
           [(f"the team scored goal number {i}", "sports") for i in range(6)] + \
           [(" ".join(["soup"] * 200), "food")] + [(f"a lovely soup for dinner {i}", "food") for i in range(6)]
    ds = load_dataset(write_csv(tmp_path / "en.csv", rows), DataLimits())
    warnings, stats = tokenizer_warnings(ds, minilm_tokenizer, 64, "minilm-l6")
    assert stats["unk_char_share"] == 0
    assert [w.code for w in warnings] == ["long_texts"]
    assert warnings[0].rows == [9]


def test_repository_config_loads_and_matches_the_defaults():
    settings = load_settings(ROOT / "config.toml")
    spec = settings.train_spec("x.csv")
    assert spec.base == "minilm-l6" and spec.layers == 3 and spec.method == "full"
    assert settings.data == DataLimits()
    from core.settings import DiscordSettings, Queue, Quotas

    # config.toml documents the defaults the code has: the two must not drift apart
    assert (settings.queue, settings.quotas, settings.discord) == (Queue(), Quotas(), DiscordSettings())


@pytest.mark.parametrize(("text", "message"), [
    ("[training]\nepochs = 'four'\n", "[training].epochs: Input should be a valid integer (got 'four')"),
    ("[training]\nepoch = 3\n", "[training].epoch is not a setting; the settings there are: attention_weight"),
    ("[training]\nmethod = 'qlora'\n", "[training].method: Input should be 'full', 'lora', 'head', 'distill' or 'probe'"),
    ("[data]\nmax_rows = true\n", "[data].max_rows: Input should be a valid integer (got True)"),
    ("[data]\nval_fraction = -0.1\n", "[data].val_fraction: Input should be greater than 0 (got -0.1)"),
    ("[data]\nval_fraction = 0.5\ntest_fraction = 0.5\n", "val_fraction + test_fraction is 1"),
    ("[trainig]\n", "[trainig] is not a section"),
    ("[training]\ndata_path = 'x.csv'\n", "data_path is not a setting here: it is chosen per run"),
    ("[training]\nmax_length = 4096\n", "[training].max_length: Input should be less than or equal to 512"),
    ("[base_models]\nzh = 3\n", "[base_models]: zh must be a model directory (a string) or a table"),
    ("[base_models]\nzh = { path = 'x', pooling = 'max' }\n", "[base_models]: zh.pooling: Input should be 'mean' or 'cls' (got 'max')"),
    ("[training\n", "not valid TOML"),
    ("[quotas]\nmax_rows = 60000\n", "[quotas].max_rows (60,000) is above [data].max_rows (50,000)"),
    ("[queue]\nmax_attempts = 0\n", "[queue].max_attempts: Input should be greater than or equal to 1"),
    ("[queue]\nworker_nice = 25\n", "[queue].worker_nice: Input should be less than or equal to 19"),
    ("[queue]\npredict_threads = 0\n", "[queue].predict_threads: Input should be greater than or equal to 1"),
    ("[queue]\ncpu_slots = 0\n", "[queue].cpu_slots: Input should be greater than or equal to 1"),
    ("[queue]\nheartbeat_seconds = 0\n", "[queue].heartbeat_seconds: Input should be greater than 0"),
    ("[queue]\ntime_limit_minutes = nan\n", "[queue].time_limit_minutes: Input should be a finite number"),
    ("[queue]\ntime_limit_minutes = inf\n", "[queue].time_limit_minutes: Input should be a finite number"),
    ("[queue]\nheartbeat_timeout_seconds = 1.0\n", "heartbeat_timeout_seconds (1) must be at least 3 heartbeats"),
    ("[queue]\nexecutor = 'slurm'\n", "[queue].executor: Input should be 'local' or 'ray'"),
    ("[data]\ntest_fraction = 1.5\n", "[data].test_fraction: Input should be less than 1"),
    ("[quotas]\nmax_epochs = 3000000000\n", "[quotas].max_epochs: Input should be less than or equal to 2147483647"),
    ("[storage]\ndatabase_url = 'mysql://root@db/class'\n", "the driver 'mysql' is not supported"),
    ("[storage]\ndatabase_url = 'not a url at all'\n", "is not a database URL"),
    ("[training]\ntemperature = 0\n", "[training].temperature: Input should be greater than 0"),
    ("[training]\naugment = 50\n", "[training].augment: Input should be less than or equal to 20"),
    ("[training]\nteacher = 'x'\n", "teacher is not a setting here: it is chosen per run"),
    ("[discord]\nguild_id = 'my class'\n", "[discord].guild_id: String should match pattern"),
    ("[discord]\ntoken = 'x'\n", "[discord].token is not a setting"),
    ("[ray]\ncpus_per_job = 0\n", "[ray].cpus_per_job: Input should be greater than 0"),
])
def test_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert message in str(info.value)


def test_config_overrides_and_relative_base_model_paths(tmp_path):
    (tmp_path / "models" / "zh").mkdir(parents=True)
    path = tmp_path / "config.toml"
    path.write_text("[training]\nepochs = 2\nlr = 1e-4\n[base_models]\nzh = 'models/zh'\n"
                    "zh-st = { path = 'models/zh', pooling = 'mean' }\n[data]\nmax_rows = 10\n")
    s = load_settings(path)
    spec = s.train_spec("x.csv", epochs=None, batch_size=8)
    assert (spec.epochs, spec.learning_rate, spec.batch_size, spec.limits.max_rows) == (2, 1e-4, 8, 10)
    assert s.base_models["zh"] == str(tmp_path / "models" / "zh")
    # a table names how the base is read; it travels to workers as plain JSON
    assert s.base_models["zh-st"] == {"path": str(tmp_path / "models" / "zh"), "pooling": "mean"}
    assert s.quotas.max_rows == 10  # the class default follows a lower server cap


def test_settings_are_frozen_and_changed_copies_are_checked(tmp_path):
    """Nothing changes a loaded setting behind the scheduler's back; a changed copy is checked like the file."""
    import pydantic

    s = load_settings(ROOT / "config.toml")
    with pytest.raises(pydantic.ValidationError):
        s.queue.cpu_slots = 4
    with pytest.raises(pydantic.ValidationError):
        s.training = None
    t = s.changed(queue={"cpu_slots": 2}, training={"epochs": 1})
    assert (t.queue.cpu_slots, t.train_spec("x.csv").epochs) == (2, 1)
    assert (s.queue.cpu_slots, s.train_spec("x.csv").epochs) == (1, None)  # the original is untouched
    with pytest.raises(ConfigError, match=r"\[training\].epochs: Input should be greater than or equal to 1"):
        s.changed(training={"epochs": 0})
    with pytest.raises(ConfigError, match="teacher is not a setting here: it is chosen per run"):
        s.changed(training={"teacher": "x"})


def test_training_defaults_are_train_spec_s_own():
    """[training]'s defaults are TrainSpec's: one default, one place."""
    from core.settings import Settings
    from core.spec import TrainSpec

    assert Settings().train_spec("x.csv") == TrainSpec(data_path="x.csv")


def test_train_spec_round_trips_through_json():
    import json

    from core.spec import SpecError, TrainSpec

    spec = TrainSpec(data_path="d.csv", layer_list=[0, 2], method="lora", limits=DataLimits(max_rows=9))
    again = TrainSpec.from_dict(json.loads(spec.to_json()))
    assert again == spec and again.limits.max_rows == 9
    with pytest.raises(SpecError, match="unknown training settings: colour"):
        TrainSpec.from_dict({**spec.to_dict(), "colour": "red"})


def test_the_environment_overrides_the_file_and_a_bad_database_url_is_named(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("[queue]\ncpu_slots = 2\n")
    monkeypatch.setenv("TINYTUTOR_QUEUE__CPU_SLOTS", "3")
    assert load_settings(path).queue.cpu_slots == 3
    monkeypatch.setenv("TINYTUTOR_QUEUE__CPU_SLOTS", "0")
    with pytest.raises(ConfigError, match=r"\[queue\].cpu_slots: Input should be greater than or equal to 1"):
        load_settings(path)
    monkeypatch.delenv("TINYTUTOR_QUEUE__CPU_SLOTS")
    monkeypatch.setenv("TINYTUTOR_DATABASE_URL", "mysql://root@db/class")
    with pytest.raises(ConfigError, match="TINYTUTOR_DATABASE_URL: the driver 'mysql' is not supported"):
        _ = load_settings(path).database_url

"""Config layering: defaults < TOML file < --set, and errors that name the key and the rule."""
from __future__ import annotations

import pytest

from pipeline.config import Config, FeaturesConfig, build_config, key_fields, parse_set
from pipeline.errors import ParameterError


def test_defaults_and_documented_keys_exist():
    cfg = Config()
    assert (cfg.load.sr, cfg.features.win_length, cfg.features.hop_length, cfg.features.n_mels) == (16000, 400, 160, 64)
    for section, key in [("load", "sr"), ("load", "mono"), ("features", "kind"), ("features", "n_fft"),
                         ("features", "win_length"), ("features", "hop_length"), ("features", "n_mels"),
                         ("chunk", "frames"), ("chunk", "hop"), ("model", "cell"), ("model", "hidden"),
                         ("model", "layers"), ("model", "bidirectional"), ("train", "epochs"),
                         ("train", "batch_size"), ("train", "lr"), ("train", "seed"),
                         ("predict", "threshold"), ("predict", "min_duration_on"),
                         ("predict", "min_duration_off")]:
        assert hasattr(getattr(cfg, section), key), f"{section}.{key}"


def test_precedence_command_line_over_file_over_defaults(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[features]\nn_mels = 80\nkind = "mfcc"\n[load]\nsr = 8000\n')
    cfg, _, _ = build_config(f, ["features.n_mels=40", "predict.threshold=0.7"])
    assert cfg.features.n_mels == 40  # --set wins
    assert cfg.features.kind == "mfcc" and cfg.load.sr == 8000  # file over defaults
    assert cfg.predict.threshold == 0.7 and cfg.features.hop_length == 160


@pytest.mark.parametrize("expr, match", [
    ("features.n_mel=40", r"unknown key 'features.n_mel'"),
    ("feature.n_mels=40", r"unknown section 'feature'"),
    ("features.hop_length=0", r"features.hop_length=0 must be a positive integer"),
    ("features.kind=cqt", r"features.kind='cqt' must be one of"),
    ("features.n_mels=many", r"features.n_mels='many' must be an integer"),
    ("load.mono=maybe", r"load.mono='maybe' must be true or false"),
    ("chunk.hop=900", r"chunk.hop=900 must be <= chunk.frames=800"),
    ("nodot=1", r"must look like stage.key=value"),
])
def test_bad_values_name_key_value_and_rule(expr, match):
    with pytest.raises(ParameterError, match=match):
        build_config(None, [expr])


def test_unknown_key_in_file_is_an_error(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[features]\nn_mesl = 80\n")
    with pytest.raises(ParameterError, match=r"c.toml.*unknown key 'features.n_mesl'"):
        build_config(f)
    f.write_text("[features\n")
    with pytest.raises(ParameterError, match="not valid TOML"):
        build_config(f)


def test_key_fields_leave_out_runtime_settings():
    k = key_fields(FeaturesConfig(batch_size=99))
    assert "batch_size" not in k and k["n_mels"] == 64


def test_parse_set_reads_toml_literals():
    assert parse_set("model.bidirectional=true") == ("model", "bidirectional", True)
    assert parse_set("train.lr=1e-3") == ("train", "lr", 1e-3)
    assert parse_set("features.kind=mfcc") == ("features", "kind", "mfcc")
    assert Config.from_dict(Config().to_dict()) == Config()


def test_build_config_says_where_each_given_setting_came_from(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nlr = 0.5\nepochs = 3\n[run]\ninputs = 'x'\n")
    sources = {}
    cfg, _, given = build_config(toml, ["train.lr=0.1", "model.hidden=8"], sources=sources)
    assert sources == {"train.lr": "--set", "train.epochs": str(toml), "model.hidden": "--set"}
    assert cfg.train.lr == 0.1 and given == {"train.lr", "model.hidden"}

"""The shared split and one-line display of a tuned run's settings (mmsheaf.runs.settings)."""

from mmsheaf.nsd.protocol import BaselineChoice
from mmsheaf.nsd.tuning import settings_text as nsd_settings_text
from mmsheaf.recsys.protocol import TRAIN_FIELDS, split_params, tuned_params_text
from mmsheaf.runs.settings import settings_text, split_by_fields


def test_split_by_fields_routes_named_keys_and_keeps_order():
    model, train = split_by_fields({"z": 1, "lr": 0.1, "a": 2, "epochs": 5}, {"lr", "epochs"})
    assert list(model.items()) == [("z", 1), ("a", 2)]
    assert list(train.items()) == [("lr", 0.1), ("epochs", 5)]


def test_settings_text_sorts_rounds_and_later_mapping_wins():
    assert settings_text({"lr": 0.00123, "layers": 2}, {"dropout": 0.5}) == "dropout=0.5, layers=2, lr=0.0012"
    assert settings_text({"lr": 0.1}, {"lr": 0.2}) == "lr=0.2"
    assert settings_text() == ""


def test_studies_show_settings_through_the_shared_helper():
    choice = BaselineChoice({"hidden_channels": 64, "dropout": 0.25}, {"lr": 0.0104})
    assert nsd_settings_text(choice) == "dropout=0.25, hidden_channels=64, lr=0.01"
    best = {"hparams": {"dim": 64}, "train": {"lr": 0.001, "reg_weight": 1e-4, "epochs": 30}}
    assert tuned_params_text(best) == "dim=64, lr=0.001, reg_weight=0.0001"  # epochs is not shown
    assert "lr" in TRAIN_FIELDS
    assert split_params({"dim": 8, "lr": 0.1}) == ({"dim": 8}, {"lr": 0.1})

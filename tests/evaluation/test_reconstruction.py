"""rFID: a trained autoencoder's reconstructions sit far closer to the data than a fresh one's."""

from ldmkit.assets import SHAPES_AUTOENCODER, SHAPES_EVALUATOR
from ldmkit.autoencoder import Autoencoder
from ldmkit.checkpoint import load_autoencoder, load_evaluator
from ldmkit.data.config import DataConfig
from ldmkit.data.factory import build_dataset
from ldmkit.evaluation.reconstruction import evaluate_reconstruction


def test_rfid_ranks_trained_above_untrained_autoencoder() -> None:
    data = build_dataset(DataConfig(resolution=64, cache=False), "heldout", 96)
    evaluator = load_evaluator(SHAPES_EVALUATOR)
    trained = load_autoencoder(SHAPES_AUTOENCODER)
    fresh = Autoencoder(trained.config)
    good = evaluate_reconstruction(trained, data, 96, features=evaluator)
    bad = evaluate_reconstruction(fresh, data, 96, features=evaluator)
    assert good["psnr"] > 28 > bad["psnr"]
    assert 0 <= good["rfid"] < bad["rfid"] / 5
    assert "rfid" not in evaluate_reconstruction(trained, data, 8)  # only with an evaluator

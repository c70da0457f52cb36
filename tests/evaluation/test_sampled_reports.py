"""Reports that sample a model: adherence (label spaces checked) and the checkpoint report."""

from collections.abc import Callable

import pytest
import torch

from ldmkit.pipeline import LatentDiffusion
from ldmkit.samplers import SamplingOptions

MakeLDM = Callable[..., LatentDiffusion]


def test_adherence_evaluation_runs_and_checks_label_spaces(make_ldm: MakeLDM) -> None:
    from ldmkit.evaluation.adherence import evaluate_adherence
    from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig

    model = make_ldm(num_classes=30)
    evaluator = ClassEvaluator(EvaluatorConfig(width=8, resolution=16)).eval()
    options = SamplingOptions(steps=2, guidance=3.0)
    result = evaluate_adherence(model, evaluator, n=6, options=options, batch_size=4)
    assert result["n"] == 6 and 0 <= result["both"] <= result["kind"] <= 1
    assert result["seconds_per_image"] > 0 and result["sampling_precision"] == "fp32"
    bf16 = options.replace(precision="bf16")
    half = evaluate_adherence(model, evaluator, n=6, options=bf16, batch_size=4)
    assert half["sampling_precision"] == "bf16" and 0 <= half["both"] <= 1
    with pytest.raises(ValueError, match="evaluator knows 30"):
        evaluate_adherence(make_ldm(num_classes=5), evaluator, n=2, options=options)


def test_checkpoint_evaluation_of_an_unconditionalmake_ldm(make_ldm: MakeLDM) -> None:
    from ldmkit.evaluation.checkpoint_report import evaluate_checkpoint, markdown_table
    from ldmkit.metrics.class_evaluator import ClassEvaluator, EvaluatorConfig

    model = make_ldm(num_classes=0)
    evaluator = ClassEvaluator(EvaluatorConfig(width=8, resolution=16)).eval()
    real = [{"image": torch.rand(3, 16, 16) * 2 - 1, "label": 0} for _ in range(5)]
    options = SamplingOptions(steps=2, guidance=3.0)
    result = evaluate_checkpoint(model, evaluator, real, n=5, options=options, batch_size=2)
    assert result["n"] == 5 and result["fid"] > 0 and result["guidance"] is None
    assert not any(key.startswith("adherence") for key in result)  # nothing was asked for
    assert "| fid |" in markdown_table(result)

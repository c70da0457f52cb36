"""The machine report benchmarks print beside their timings, and `ldmkit info`."""

import json

import torch
from typer.testing import CliRunner

from ldmkit.cli import app
from ldmkit.hardware import cpu_capabilities, machine_report
from ldmkit.precision import resolve_precision


def test_machine_report_agrees_with_torch() -> None:
    report = machine_report()
    assert report["torch"] == torch.__version__
    cpu = report["cpu"]
    assert cpu["torch_threads"] == torch.get_num_threads()
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability()
    flagged = {name for name, value in cpu_capabilities().items() if value is True}
    assert set(cpu["instructions"]) <= flagged  # only what the CPU reports
    assert ("avx2" in cpu["instructions"]) == ("avx2" in flagged)
    assert len(report["cuda"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    json.dumps(report)  # JSON-ready


def test_info_command_prints_the_report_and_the_auto_precision() -> None:
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["cpu"] == machine_report()["cpu"]
    assert info["precision"]["cpu"]["auto"] == resolve_precision("auto", torch.device("cpu"))
    assert set(info["precision"]["cpu"]["native"]) == {"bf16", "fp16"}

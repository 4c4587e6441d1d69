"""The fxlib command line: discovery, showing parameters, the demo, and its errors."""
import json
import shutil

import pytest

from fxlib.cli import guess_kind, main


def test_plugins_list_builtins(capsys):
    assert main(["plugins", "list", "--kind", "builtin"]) == 0
    out = capsys.readouterr().out
    assert "Compressor" in out and "MultibandGate" in out


def test_plugins_show_builtin(capsys):
    assert main(["plugins", "show", "Compressor"]) == 0
    out = capsys.readouterr().out
    assert "threshold_db" in out and "dB" in out and "-60" in out


def test_plugins_show_unknown_is_a_clear_error(capsys):
    assert main(["plugins", "show", "Compresor"]) == 2
    assert "did you mean 'Compressor'" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("lv2ls") is None, reason="LV2 tools not installed")
def test_plugins_list_lv2_finds_calf(capsys):
    assert main(["plugins", "list", "--kind", "lv2"]) == 0
    assert "http://calf.sourceforge.net/plugins/MultibandGate" in capsys.readouterr().out


def test_guess_kind():
    assert guess_kind("Compressor") == "builtin"
    assert guess_kind("http://calf.sourceforge.net/plugins/MultibandGate") == "lv2"
    assert guess_kind("mypkg.fx:gain") == "python"
    assert guess_kind("SomeVendorPlugin.vst3") == "vst3"


def test_chains_show(capsys):
    assert main(["chains", "show", "amp-builtin"]) == 0
    assert "mbc.threshold_db_0" in capsys.readouterr().out


def test_demo_writes_json_and_wavs(tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["chains"]["amp-builtin"]["learned_parameters"] == 17
    assert (tmp_path / "input.wav").exists() and (tmp_path / "amp-builtin-default.wav").exists()
    assert not list(tmp_path.glob("*.tmp"))

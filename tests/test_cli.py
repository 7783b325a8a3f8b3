import subprocess
import sys

import pytest

from edgekit.cli import main


def test_import_edgekit_is_light():
    code = (
        "import sys, edgekit, edgekit.cli, edgekit.config, edgekit.errors;"
        "heavy = [m for m in ('tensorflow', 'tf_keras', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx',"
        " 'ai_edge_litert', 'tf2onnx') if m in sys.modules];"
        "print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"import edgekit pulled in: {r.stdout}"


def test_unknown_precision_exits_2(capsys, tmp_path):
    rc = main(
        [
            "export",
            "zoo:dncnn",
            "--format",
            "tflite",
            "--precision",
            "int4",
            "--out",
            str(tmp_path / "x.tflite"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown precision 'int4'" in err
    assert not list(tmp_path.iterdir())


def test_malformed_target_exits_2(capsys, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("name: t\nruntime: litert\nbogus: 1\n")
    rc = main(
        [
            "export",
            "zoo:dncnn",
            "--format",
            "tflite",
            "--precision",
            "fp32",
            "--target",
            str(bad),
            "--out",
            str(tmp_path / "x.tflite"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "t.yaml" in err and "bogus" in err
    assert not (tmp_path / "x.tflite").exists()


def test_bad_shape_exits_2(capsys):
    assert (
        main(
            [
                "export",
                "zoo:dncnn",
                "--format",
                "tflite",
                "--precision",
                "fp32",
                "--shape",
                "big",
                "--out",
                "x.tflite",
            ]
        )
        == 2
    )
    assert "--shape 'big'" in capsys.readouterr().err


def test_missing_artifact_for_bench_exits_2(capsys, tmp_path):
    assert main(["bench", str(tmp_path / "nope.tflite"), "--out", str(tmp_path / "r")]) == 2
    assert "nope.tflite: artifact not found" in capsys.readouterr().err


def test_argparse_usage_error_exits_2():
    with pytest.raises(SystemExit) as e:
        main(["export"])
    assert e.value.code == 2


def test_targets_lists_every_profile(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in (
        "host-cpu",
        "android-cpu-int8",
        "android-gpu-fp16",
        "jetson-orin-nano",
        "rtx-desktop",
    ):
        assert name in out


def test_precision_the_target_does_not_list_exits_2(capsys, tmp_path):
    out = tmp_path / "x.engine"
    rc = main(
        [
            "export",
            "zoo:dncnn",
            "--format",
            "tensorrt",
            "--precision",
            "fp32",
            "--target",
            "rtx-desktop",
            "--out",
            str(out),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "target 'rtx-desktop'" in err and "tensorrt fp32" in err and "tensorrt-fp16" in err
    assert not list(tmp_path.iterdir())


def test_bench_flags_reach_the_harness(monkeypatch, tmp_path):
    import edgekit.pipeline as pipeline

    seen = {}

    def fake_bench(artifacts, target, reference, out_dir, **kw):
        seen.update(kw)
        return {}

    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    monkeypatch.setattr(pipeline, "bench_with_reference", fake_bench)
    argv = ["bench", str(art), "--out", str(tmp_path / "r")]
    assert main(argv + ["--max-side", "96", "--seed", "3", "--no-memory"]) == 0
    assert seen["bench_options"] == {"max_side": 96, "seed": 3, "memory": False}
    assert main(argv) == 0
    assert seen["bench_options"] == {"memory": True}  # harness defaults for the rest
    assert main(argv + ["--whole-image-check"]) == 0
    assert seen["bench_options"] == {"memory": True, "whole_image": True}


def test_bad_max_side_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["bench", str(tmp_path / "m.tflite"), "--max-side", "0"])
    assert exc.value.code == 2
    assert "expected a positive whole number of pixels, got '0'" in capsys.readouterr().err


def test_bad_value_range_exits_2(capsys, tmp_path):
    argv = ["export", "zoo:dncnn", "--format", "tflite", "--precision", "fp32"]
    rc = main(argv + ["--value-range", "255,0", "--out", str(tmp_path / "x.tflite")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--value-range '255,0': expected LO,HI with LO < HI" in err
    assert not list(tmp_path.iterdir())


def test_value_range_and_task_reach_the_loader(monkeypatch, tmp_path):
    import edgekit.models.loading as loading

    seen = {}

    def fake_load(spec, allow_custom_code=False, **kw):
        seen.update(kw, spec=spec)
        raise loading.EdgekitError("stop here")

    monkeypatch.setattr(loading, "load_model", fake_load)
    argv = ["export", "my.h5", "--format", "tflite", "--precision", "fp32"]
    argv += ["--value-range", "0,255", "--task", "deblur", "--out", str(tmp_path / "x.tflite")]
    assert main(argv) == 2
    assert seen["value_range"] == (0.0, 255.0) and seen["task"] == "deblur"


def test_misspelt_exporter_option_in_a_target_exits_2(capsys, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(
        "name: typo\ndescription: d\ndevice: host\nruntime: onnxruntime\nexports:\n"
        "  - {format: onnx, precision: int8, options: {layout: NCHW, activatons: asymmetric}}\n"
    )
    out = tmp_path / "x.onnx"
    argv = ["export", "zoo:dncnn", "--format", "onnx", "--precision", "int8"]
    rc = main([*argv, "--target", str(bad), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edgekit: error: {bad}: ") and "\n" not in err
    assert "key 'exports.0.options.activatons': unknown onnx option" in err
    assert "activations" in err  # the spelling it probably meant is listed
    assert not out.exists()


def test_misspelt_exporter_option_from_the_api_names_the_key(tmp_path):
    from edgekit.config import Format, Precision
    from edgekit.errors import EdgekitError
    from edgekit.export.base import ExportRequest, get_exporter
    from edgekit.models.info import LoadedModel, ModelInfo

    loaded = LoadedModel(None, ModelInfo("m", "denoise", "noise:sigma=25"))
    for fmt, key in (("onnx", "layot"), ("tflite", "int8_fallbak"), ("tensorrt", "modul")):
        req = ExportRequest(Format(fmt), Precision.fp32, None, options={key: "x"})
        with pytest.raises(EdgekitError, match=rf"export options: unknown {fmt} option '{key}'"):
            get_exporter(fmt).export(loaded, req, tmp_path / f"m.{fmt}")
    assert list(tmp_path.iterdir()) == []

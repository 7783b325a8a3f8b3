import pytest

from edgekit.config import (
    Precision,
    list_targets,
    load_target,
    parse_precision,
    parse_shape,
    target_from_dict,
)
from edgekit.errors import EdgekitError

BASE = {
    "name": "t",
    "description": "d",
    "device": "dev",
    "runtime": "litert",
    "exports": [{"format": "tflite", "precision": "int8"}],
}


def test_bundled_targets_load_and_cover_the_issue():
    names = {t.name for t in list_targets()}
    assert {
        "host-cpu",
        "android-cpu-int8",
        "android-gpu-fp16",
        "jetson-orin-nano",
        "rtx-desktop",
    } <= names
    host = load_target("host-cpu")
    assert host.tile == (256, 256) and host.threads == 2
    assert {e.precision for e in host.exports} >= {
        Precision.fp32,
        Precision.fp16,
        Precision.dynamic,
        Precision.int8,
    }
    assert load_target("rtx-desktop").tensorrt.compute_capability == "SM89"


def test_unknown_key_names_file_and_key():
    with pytest.raises(EdgekitError, match=r"my\.yaml.*key 'threds'.*unknown key"):
        target_from_dict({**BASE, "threds": 2}, "my.yaml")


def test_wrong_type_names_key():
    with pytest.raises(EdgekitError, match=r"key 'threads'"):
        target_from_dict({**BASE, "threads": "four"}, "my.yaml")


def test_unknown_precision_in_target():
    bad = {**BASE, "exports": [{"format": "tflite", "precision": "int4"}]}
    with pytest.raises(EdgekitError, match=r"exports\.0\.precision.*unknown precision 'int4'"):
        target_from_dict(bad, "my.yaml")


def test_malformed_yaml_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(EdgekitError, match=r"broken\.yaml: malformed YAML"):
        load_target(p)


def test_yaml_that_is_not_a_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(EdgekitError, match="must be a YAML mapping"):
        load_target(p)


def test_unknown_target_name_lists_known():
    with pytest.raises(EdgekitError, match="unknown target 'nope'.*host-cpu"):
        load_target("nope")


def test_ssh_connection_validated():
    t = target_from_dict(
        {**BASE, "connection": {"kind": "ssh", "host": "jetson.local", "port": 22}}, "x.yaml"
    )
    assert not t.is_local and t.measured_on() == "ssh:jetson.local"
    with pytest.raises(EdgekitError, match="connection"):
        target_from_dict({**BASE, "connection": {"kind": "ssh"}}, "x.yaml")


def test_host_measurements_are_labelled_host():
    assert load_target("android-cpu-int8").measured_on().startswith("host-cpu")


def test_parse_helpers():
    assert parse_shape("128x96") == (128, 96)
    with pytest.raises(EdgekitError, match="HxW"):
        parse_shape("128")
    assert parse_precision("int16x8") is Precision.int16x8
    with pytest.raises(EdgekitError, match="unknown precision 'int3'"):
        parse_precision("int3")

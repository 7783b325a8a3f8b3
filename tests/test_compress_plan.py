"""Plan schema: strict validation, step order rules, YAML round trip, errors naming file and step."""

from __future__ import annotations

import pytest
import yaml

from edgekit.config import (
    DistillStep,
    PruneChannelsStep,
    PruneMagnitudeStep,
    QatStep,
    list_targets,
    load_plan,
    plan_from_dict,
    target_from_dict,
)
from edgekit.errors import EdgekitError


def _err(data, source="plans/p.yaml") -> str:
    with pytest.raises(EdgekitError) as info:
        plan_from_dict(data, source)
    return str(info.value)


def test_round_trip_yaml(tmp_path):
    plan = plan_from_dict(
        {
            "name": "full",
            "steps": [
                {
                    "kind": "prune_channels",
                    "ratio": {"conv1": 0.5, "conv2": 0.25},
                    "criterion": "l2",
                },
                {"kind": "distill", "student": "pruned", "alpha": 0.5, "lr": "1e-3"},
                {"kind": "qat", "steps": 10},
            ],
        }
    )
    assert [type(s) for s in plan.steps] == [PruneChannelsStep, DistillStep, QatStep]
    assert plan.steps[1].lr == pytest.approx(1e-3)  # YAML's "1e-3" string is accepted as a float
    path = tmp_path / "plan.yaml"
    path.write_text(plan.to_yaml())
    again = load_plan(path)
    assert again.to_dict() == plan.to_dict()
    assert again.source == str(path)
    assert list(plan.to_dict()["steps"][0])[0] == "kind"


def test_bare_list_and_m_by_n():
    plan = plan_from_dict([{"kind": "prune_magnitude", "m_by_n": "2:4"}])
    step = plan.steps[0]
    assert isinstance(step, PruneMagnitudeStep)
    assert step.m_n == (2, 4) and step.effective_sparsity == pytest.approx(0.5)


def test_unknown_step_named_with_file_and_index():
    msg = _err({"steps": [{"kind": "qat"}, {"kind": "prune_magic"}]})
    assert msg.startswith("plans/p.yaml: invalid plan:")
    assert "step 1" in msg and "prune_magic" in msg and "prune_magnitude" in msg


def test_unknown_key_and_missing_kind():
    assert "step 0 (qat) key 'stepz'" in _err({"steps": [{"kind": "qat", "stepz": 3}]})
    assert "missing 'kind'" in _err({"steps": [{"steps": 3}]})


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_sparsity_out_of_range(sparsity):
    msg = _err({"steps": [{"kind": "prune_magnitude", "sparsity": sparsity}]})
    assert "step 0 (prune_magnitude) key 'sparsity'" in msg


def test_ratio_out_of_range_per_layer():
    msg = _err({"steps": [{"kind": "prune_channels", "ratio": {"conv3": 1.0}}]})
    assert "conv3" in msg and "[0, 1)" in msg


@pytest.mark.parametrize(
    "first,second",
    [
        ("qat", "prune_magnitude"),
        ("qat", "prune_channels"),
        ("qat", "distill"),
        ("prune_magnitude", "prune_channels"),
        ("prune_magnitude", "qat"),
    ],
)
def test_impossible_order(first, second):
    steps = [{"kind": first}, {"kind": second}]
    if second == "distill":
        steps[1]["student"] = "dncnn"
    msg = _err({"steps": steps})
    assert f"step 1 ({second}) may not come after step 0 ({first})" in msg


def test_allowed_orders():
    a = plan_from_dict([{"kind": "prune_channels"}, {"kind": "prune_magnitude", "sparsity": 0.4}])
    assert [type(s) for s in a.steps] == [PruneChannelsStep, PruneMagnitudeStep]
    assert a.steps[1].sparsity == 0.4 and a.steps[0].ratio == pytest.approx(0.33)
    b = plan_from_dict([{"kind": "prune_channels"}, {"kind": "distill"}, {"kind": "qat"}])
    assert [s.kind for s in b.steps] == ["prune_channels", "distill", "qat"]
    assert b.steps[1].student == "pruned"  # the default student is the pruned model
    c = plan_from_dict([{"kind": "distill", "student": "dncnn", "width": 16}, {"kind": "qat"}])
    assert isinstance(c.steps[0], DistillStep) and isinstance(c.steps[1], QatStep)
    assert (c.steps[0].student, c.steps[0].width, c.steps[0].depth) == ("dncnn", 16, None)


def test_distill_pruned_needs_prune_channels():
    assert "no prune_channels step comes before it" in _err([{"kind": "distill"}])


def test_bad_m_by_n():
    assert "m_by_n" in _err([{"kind": "prune_magnitude", "m_by_n": "4:2"}])
    assert "m_by_n" in _err([{"kind": "prune_magnitude", "m_by_n": "two:four"}])


def test_block_pruning_options():
    plan = plan_from_dict([{"kind": "prune_magnitude", "sparsity": 0.5, "block": 4}])
    assert plan.steps[0].block == 4
    assert "choose one sparsity pattern" in _err(
        [{"kind": "prune_magnitude", "block": 4, "m_by_n": "2:4"}]
    )
    assert "block" in _err([{"kind": "prune_magnitude", "block": 0}])


def test_qat_ranges_option():
    step = plan_from_dict([{"kind": "qat"}]).steps[0]
    assert (step.ranges, step.target) == ("ema", "float")
    step = plan_from_dict([{"kind": "qat", "ranges": "frozen", "target": "clean"}]).steps[0]
    assert (step.ranges, step.target) == ("frozen", "clean")
    assert "ranges" in _err([{"kind": "qat", "ranges": "sometimes"}])
    assert "target" in _err([{"kind": "qat", "target": "teacher"}])


def test_plan_file_errors(tmp_path):
    with pytest.raises(EdgekitError, match="plan file not found"):
        load_plan(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [kind: qat\n")
    with pytest.raises(EdgekitError, match="bad.yaml: malformed YAML"):
        load_plan(bad)


def test_target_with_plan_and_all_bundled_targets_load():
    targets = list_targets()  # every bundled target still validates
    assert targets
    for t in targets:  # and ships a default plan whose channel counts suit its runtime
        assert t.plan is not None and t.plan.steps, t.name
        assert t.plan.steps[0].kind == "prune_channels" and t.plan.steps[0].round_to in (8, 16, 32)
    data = yaml.safe_load(open(list_targets()[0].source).read())
    data["plan"] = {"steps": [{"kind": "qat", "steps": 5}]}
    with pytest.raises(EdgekitError, match=r"t.yaml: invalid target: plan step 0 \(qat\).*int16x8"):
        target_from_dict(data, "t.yaml")  # QAT only where every export is int8
    data["exports"] = [e for e in data["exports"] if e["precision"] == "int8"]
    t = target_from_dict(data, "t.yaml")
    assert isinstance(t.plan.steps[0], QatStep)
    data["plan"] = {"steps": [{"kind": "qat", "bogus": 1}]}
    with pytest.raises(EdgekitError, match="t.yaml: invalid target: key 'plan.steps.0.qat.bogus'"):
        target_from_dict(data, "t.yaml")


def test_import_compress_stays_light():
    import subprocess
    import sys

    code = "import sys, edgekit.compress, edgekit.config; print('tensorflow' in sys.modules, 'tensorflow_model_optimization' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]

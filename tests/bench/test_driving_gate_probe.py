"""The gate probe's expert specs become ExpertConfig settings, and a wrong one stops before any episode is driven."""

import pytest

from benchmarks.driving_gate_probe import expert_settings


def test_an_expert_spec_names_fields_of_the_expert_config_with_typed_values():
    assert expert_settings("other_routes=any,speed_up_margin=4") == {"other_routes": "any", "speed_up_margin": 4.0}
    assert expert_settings("") == {}


@pytest.mark.parametrize("spec", ["routes=any", "speed_up_margin", "other_routes=psychic", "speed_up_margin=1"])
def test_a_wrong_expert_spec_is_refused_with_the_fields_named(spec):
    with pytest.raises((SystemExit, ValueError)) as error:
        expert_settings(spec)
    assert "margin" in str(error.value) or "other_routes" in str(error.value)


def test_the_probe_drives_the_constant_baselines_beside_the_clones():
    from benchmarks.driving_gate_probe import constant_policies
    from domains.driving.policies import ConstantPolicy, build_policy

    policies = {name: build_policy(spec) for name, spec in constant_policies().items()}
    assert list(policies) == ["constant IDLE", "constant SLOWER"]
    assert all(isinstance(policy, ConstantPolicy) for policy in policies.values())
    assert [policy.act(None, None, "intersection")[0] for policy in policies.values()] == ["IDLE", "SLOWER"]

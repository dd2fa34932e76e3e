"""Two runs' wider closed-loop checks compared policy by policy, scenario by scenario, with the crash-count test."""

import json

import pytest

from benchmarks.driving_compare_runs import compare, crash_test, main


def check(crashes: dict[str, dict[str, int]], episodes: int = 200, speed: float = 20.0) -> dict:
    return {"command": "python -m benchmarks.driving_more_episodes ...", "episodes": episodes, "offset": 20,
            "results": {policy: {scenario: {"crashes": c, "episodes": float(episodes), "collision_rate": c / episodes,
                                            "mean_speed": speed}
                                 for scenario, c in by_scenario.items()}
                        for policy, by_scenario in crashes.items()}}  # fmt: skip


def test_each_policy_gets_its_scenarios_and_its_total_over_them_with_fishers_test():
    first = check({"expert": {"highway": 3, "merge": 0}, "tiny-imitation": {"highway": 30, "merge": 10}})
    second = check({"expert": {"highway": 3, "merge": 0}, "tiny-imitation": {"highway": 10, "merge": 10}}, speed=15)
    table = compare(first, second)
    assert set(table) == {"expert", "tiny-imitation"}  # policies only one check drove are left out
    assert table["expert"]["highway"]["p_value"] == 1.0  # the same counts: no evidence of a difference
    assert table["tiny-imitation"]["all"]["crashes"] == [40, 20] and table["tiny-imitation"]["all"]["episodes"] == [
        400, 400]  # fmt: skip
    assert table["tiny-imitation"]["highway"]["p_value"] < 0.01 < table["tiny-imitation"]["merge"]["p_value"]
    assert table["tiny-imitation"]["highway"]["mean_speed"] == [20.0, 15.0]


def test_a_budgets_planners_follow_the_baselines_and_full_data_planners():
    first = check({"tiny-10pct-imitation": {"highway": 9}, "expert": {"highway": 3}, "tiny-10pct-all": {"highway": 7},
                   "tiny-10pct-recon": {"highway": 5}})  # fmt: skip
    second = check(
        {"tiny-10pct-all": {"highway": 8}, "tiny-10pct-imitation": {"highway": 6}, "expert": {"highway": 3}}
    )
    table = compare(first, second)
    assert list(table) == ["expert", "tiny-10pct-imitation", "tiny-10pct-all"]  # recon: only the first drove it
    assert table["tiny-10pct-all"]["highway"]["crashes"] == [7, 8]


def test_the_crash_test_is_symmetric_and_grows_with_the_gap():
    a, b, c = ({"crashes": n, "episodes": 600.0} for n in (9, 26, 60))
    assert crash_test(a, b) == pytest.approx(crash_test(b, a))
    assert crash_test(a, c) < crash_test(a, b) < 0.05


def test_the_command_writes_both_files_and_refuses_checks_of_different_episodes(tmp_path):
    paths = []
    for name, episodes in (("a", 200), ("b", 200), ("c", 100)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(check({"expert": {"highway": 1}}, episodes)))
    main([str(paths[0]), str(paths[1]), "--names", "known", "any", "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "compare.md").read_text()
    assert "crashes known / any" in text and "| expert | highway | 1 of 200 / 1 of 200 |" in text
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["names"] == ["known", "any"]
    with pytest.raises(SystemExit, match="different episodes"):
        main([str(paths[0]), str(paths[2]), "--out", str(tmp_path / "out2")])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bad.json"):
        main([str(tmp_path / "bad.json"), str(paths[0])])


def test_each_seeds_crashes_show_where_both_checks_kept_them():
    from benchmarks.driving_compare_runs import table_rows

    first = check({"tiny-all": {"highway": 30, "merge": 3}})
    second = check({"tiny-all": {"highway": 12, "merge": 4}})
    first["results"]["tiny-all"]["highway"]["crashes_by_seed"] = [20.0, 4.0, 6.0]
    second["results"]["tiny-all"]["highway"]["crashes_by_seed"] = [4.0, 4.0, 4.0]
    first["results"]["tiny-all"]["merge"]["crashes_by_seed"] = [1.0, 1.0, 1.0]  # the other check made before
    rows = table_rows(compare(first, second))
    assert "| tiny-all | highway | 30 of 200 (20 + 4 + 6) / 12 of 200 (4 + 4 + 4) |" in rows[0]
    assert "| tiny-all | merge | 3 of 200 / 4 of 200 |" in rows[1]  # brackets only where both kept them
    assert "(" not in rows[2]  # the total over scenarios pools


def test_mcnemars_test_pairs_the_episodes_where_both_checks_kept_their_outcomes():
    from benchmarks.driving_compare_runs import paired_crashes, table_rows

    first = check({"tiny-all": {"highway": 8, "merge": 0}}, episodes=8)
    second = check({"tiny-all": {"highway": 0, "merge": 0}}, episodes=8)
    first["outcomes"] = {"tiny-all|0": {"highway": "cccccccc", "merge": "........"}}
    second["outcomes"] = {"tiny-all|0": {"highway": "ssssssss", "merge": "........"}}  # short, not crashed
    table = compare(first, second)
    assert table["tiny-all"]["highway"]["paired_p_value"] == pytest.approx(2 / 2**8)  # 8 discordant, all one way
    assert table["tiny-all"]["merge"]["paired_p_value"] == 1.0
    assert table["tiny-all"]["all"]["paired_p_value"] == pytest.approx(2 / 2**8)
    assert table_rows(table)[0].endswith("| 0.0078 |")
    second["outcomes"] = {"tiny-all|1": second["outcomes"]["tiny-all|0"]}  # another training seed: no pairing
    assert paired_crashes(first, second, "tiny-all", ["highway"]) is None
    del second["outcomes"]  # a check made before outcomes were kept
    assert compare(first, second)["tiny-all"]["highway"]["paired_p_value"] is None
    assert table_rows(compare(first, second))[0].endswith("| – |")

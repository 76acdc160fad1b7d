"""`mbrl experiment` writes a complete run directory; usage errors exit 2 with a message."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mbrl.cli import main
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.experiment_cli import parse_set
from mbrl.models.ensemble import ProbabilisticEnsemble


def test_experiment_writes_run_directory(tmp_path, capsys):
    torch.set_num_threads(1)
    argv = ["experiment", "--algo", "mpc", "--seed", "2", "--budget-steps", "30"]
    argv += ["--episode-steps", "15", "--eval-goals", "2", "--out", str(tmp_path)]
    argv += ["--set", "fit_max_epochs=20", "--set", "planner_config.num_samples=20"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[mpc-reach-s2] steps=15" in out  # progress lines while it runs
    result = json.loads(out.strip().splitlines()[-1])
    run = tmp_path / "mpc-reach-s2"
    assert result["run_dir"] == str(run) and result["env_steps"] == 30
    config = json.loads((run / "config.json").read_text())
    assert config["algo_params"] == {"fit_max_epochs": 20, "planner_config": {"num_samples": 20}}
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["env_steps"]) for r in rows] == [0, 15, 30]
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert len(list((run / "episodes").glob("episode_*.mcap"))) == 2
    model = ProbabilisticEnsemble.load(run / "checkpoints" / "ensemble_final.npz")
    assert model.dx == 15 and len(TransitionDataset.load(run / "data.npz")) == 30


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "refit_evry=3"], "unknown parameter 'refit_evry'"),
        (["--set", "novalue"], "expected key=value"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, extra, message):
    argv = ["experiment", "--algo", "mpc", "--budget-steps", "10", "--out", str(tmp_path), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["mpc", "alg1", "alg2", "policy", "gps", "pilco"])
def test_a_misspelt_set_key_is_a_usage_error_for_every_algorithm(tmp_path, capsys, algo):
    argv = ["experiment", "--algo", algo, "--budget-steps", "10", "--out", str(tmp_path)]
    assert main([*argv, "--set", "horizn=3"]) == 2
    out = capsys.readouterr().out
    assert "horizn" in out and "Traceback" not in out
    assert not list(tmp_path.glob("*/episodes/*.mcap"))  # refused before any step


def test_parse_set_nests_and_parses_yaml():
    got = parse_set(["a=1", "b.c=[1, 2]", "d=icem", "b.e=0.5"])
    assert got == {"a": 1, "b": {"c": [1, 2], "e": 0.5}, "d": "icem"}

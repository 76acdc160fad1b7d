"""Runs INSIDE the mbrl-lib 0.2.0 venv (bench/peers/mbrl_lib.py starts it): one JSON command
per stdin line, one JSON reply per stdout line. Never imports this repository's `mbrl`.

Commands:
    hello {threads}                       -> versions
    setup_fit {data, ensemble_size, hidden, batch_size, holdout_fraction, lr,
               weight_decay, seed}        -> sizes (data: .npz with obs, act, next_obs)
    fit {epochs}                          -> seconds, cpu_seconds, epochs (ModelTrainer.train)
    setup_planner {dx, du, ensemble_size, hidden, horizon, num_samples, num_elites,
                   iterations, particles, momentum, ee, goal, seed}
    replan                                -> seconds, cpu_seconds (one agent.act)
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import types

import numpy as np
import torch

STATE: dict = {}


def ensemble(in_size: int, out_size: int, E: int, hidden: list[int], propagation):
    import mbrl.models

    if len(set(hidden)) != 1:
        raise ValueError(f"mbrl-lib's GaussianMLP has equal hidden widths; got {hidden}")
    # As the PETS example config: SiLU; learned log-variance bounds, like ours.
    net = mbrl.models.GaussianMLP(
        in_size,
        out_size,
        "cpu",
        num_layers=len(hidden),
        ensemble_size=E,
        hid_size=hidden[0],
        deterministic=False,
        propagation_method=propagation,
        learn_logvar_bounds=True,
        activation_fn_cfg={"_target_": "torch.nn.SiLU"},
    )
    # PETS config: delta targets, normalised inputs in double precision.
    return mbrl.models.OneDTransitionRewardModel(
        net,
        target_is_delta=True,
        normalize=True,
        normalize_double_precision=True,
        learned_rewards=False,
    )


def hello(threads: int) -> dict:
    import mbrl

    torch.set_num_threads(threads)
    return {"mbrl_lib": mbrl.__version__, "torch": torch.__version__, "threads": threads}


def setup_fit(data, ensemble_size, hidden, batch_size, holdout_fraction, lr, weight_decay, seed):
    import mbrl.util.common
    from mbrl.util.replay_buffer import ReplayBuffer

    import mbrl.models

    d = np.load(data)
    obs, act, nxt = d["obs"], d["act"], d["next_obs"]
    n, dx, du = len(obs), obs.shape[1], act.shape[1]
    torch.manual_seed(seed)
    model = ensemble(dx + du, dx, ensemble_size, hidden, None)
    buffer = ReplayBuffer(n, (dx,), (du,), rng=np.random.default_rng(seed))
    zeros = np.zeros(n, dtype=bool)
    buffer.add_batch(obs, act, nxt, np.zeros(n, np.float32), zeros, zeros)
    model.update_normalizer(buffer.get_all())
    train, val = mbrl.util.common.get_basic_buffer_iterators(
        buffer, batch_size, holdout_fraction, ensemble_size=ensemble_size
    )
    trainer = mbrl.models.ModelTrainer(model, optim_lr=lr, weight_decay=weight_decay)
    STATE.update(trainer=trainer, train=train, val=val)
    return {"train_rows": train.num_stored, "val_rows": val.num_stored}


def fit(epochs: int) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    # patience None: exactly `epochs` epochs, each followed by the validation pass.
    losses, _ = STATE["trainer"].train(
        STATE["train"], STATE["val"], num_epochs=epochs, patience=None, silent=True
    )
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "epochs": len(losses),
    }


def setup_planner(
    dx,
    du,
    ensemble_size,
    hidden,
    horizon,
    num_samples,
    num_elites,
    iterations,
    particles,
    momentum,
    ee,
    goal,
    seed,
):
    import gymnasium as gym
    import mbrl.planning
    import omegaconf

    import mbrl.models

    torch.manual_seed(seed)
    # "fixed_model" = TS-infinity, a member per particle for the horizon (PETS, our "tsinf").
    model = ensemble(dx + du, dx, ensemble_size, hidden, "fixed_model")
    rng = np.random.default_rng(seed)
    model.update_normalizer(
        types.SimpleNamespace(obs=rng.standard_normal((100, dx)), act=rng.uniform(-1, 1, (100, du)))
    )
    spaces = types.SimpleNamespace(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (dx,)),
        action_space=gym.spaces.Box(-1.0, 1.0, (du,)),
    )

    def reward(u, x):  # minus squared EE-goal distance and a small action cost: (B, 1)
        d = x[:, ee[0] : ee[1]] - x[:, goal[0] : goal[1]]
        return -(d * d).sum(1, keepdim=True) - 0.01 * (u * u).sum(1, keepdim=True)

    def no_termination(u, x):
        return torch.zeros(len(x), 1, dtype=torch.bool)

    env = mbrl.models.ModelEnv(
        spaces, model, no_termination, reward, generator=torch.Generator().manual_seed(seed)
    )
    cfg = omegaconf.OmegaConf.create(
        {
            "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
            # The agent instantiates optimizer_cfg itself once it has filled in the bounds.
            "_recursive_": False,
            "action_lb": [-1.0] * du,
            "action_ub": [1.0] * du,
            "planning_horizon": horizon,
            "replan_freq": 1,
            "verbose": False,
            "optimizer_cfg": {
                "_target_": "mbrl.planning.CEMOptimizer",
                "num_iterations": iterations,
                "elite_ratio": num_elites / num_samples,
                "population_size": num_samples,
                "alpha": momentum,
                "lower_bound": "???",
                "upper_bound": "???",
                "return_mean_elites": True,
                "device": "cpu",
                "clipped_normal": False,
            },
        }
    )
    agent = mbrl.planning.create_trajectory_optim_agent_for_model(env, cfg, particles)
    STATE.update(agent=agent, x0=np.zeros(dx, np.float32))
    replan()  # warm-up, as our side gets
    return {"evals_per_replan": iterations * num_samples * particles * horizon}


def replan() -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    STATE["agent"].act(STATE["x0"])
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


COMMANDS = {f.__name__: f for f in (hello, setup_fit, fit, setup_planner, replan)}


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        try:
            # Anything the library prints goes to stderr; stdout carries only replies.
            with contextlib.redirect_stdout(sys.stderr):
                reply = COMMANDS[cmd](**msg)
        except Exception as e:  # reported to the driver, which raises with the message
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

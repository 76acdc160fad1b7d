"""Sample-based planning with a table-lookup model, and the lecture's AB example.

Planning = sample experience from the model, then learn from it with a model-free method:
Monte-Carlo evaluation, Sarsa, or Q-learning (Silver, RL lecture 8, "Sample-Based Planning";
Sutton & Barto 2018, sec. 8.1). Dyna-Q on the grid mazes lives in mbrl.loop.mazes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mbrl.models.tabular import TableLookupModel

# An episode: (states (T+1,), actions (T,), rewards (T,)); states[-1] is the terminal state
# (or the last state reached when cut at max_steps).
Episode = tuple[np.ndarray, np.ndarray, np.ndarray]

# The AB example (Silver, lecture 8; Sutton & Barto Example 6.4): two states, no actions
# (one dummy action 0), terminal state T. Observed episodes "A, 0, B, 0", "B, 1" x 6, "B, 0".
A_STATE, B_STATE, T_STATE = 0, 1, 2
AB_NAMES = ("A", "B", "T")
AB_EPISODES: list[list[tuple[int, int, float]]] = (
    [[(A_STATE, 0, 0.0), (B_STATE, 0, 0.0)]] + [[(B_STATE, 0, 1.0)]] * 6 + [[(B_STATE, 0, 0.0)]]
)
# The eight episodes the lecture shows as sampled from the model:
# B,1  B,0  B,1  A,0,B,1  B,1  A,0,B,1  B,1  B,0.
LECTURE_SAMPLED_EPISODES: list[Episode] = [
    (np.array(s), np.zeros(len(r), dtype=np.int64), np.array(r, dtype=float))
    for s, r in [
        ([1, 2], [1]),
        ([1, 2], [0]),
        ([1, 2], [1]),
        ([0, 1, 2], [0, 1]),
        ([1, 2], [1]),
        ([0, 1, 2], [0, 1]),
        ([1, 2], [1]),
        ([1, 2], [0]),
    ]
]


def sample_episodes(
    model: TableLookupModel,
    start_probs: np.ndarray,
    policy: np.ndarray,
    n_episodes: int,
    rng: np.random.Generator,
    max_steps: int = 1000,
) -> list[Episode]:
    """Simulate episodes from the model under `policy` (S, A) (rows sum to 1).

    Start states come from `start_probs` (S,); an episode ends on a terminal transition or
    after `max_steps` steps.
    """
    S, A = model.n_states, model.n_actions
    if policy.shape != (S, A):
        raise ValueError(f"policy has shape {policy.shape}; expected (S, A) = ({S}, {A})")
    episodes = []
    for _ in range(n_episodes):
        s = int(rng.choice(S, p=start_probs))
        states, actions, rewards = [s], [], []
        for _ in range(max_steps):
            a = int(rng.choice(A, p=policy[s]))
            s_next, r, done = model.sample([s], [a], rng)
            actions.append(a)
            rewards.append(float(r[0]))
            s = int(s_next[0])
            states.append(s)
            if done[0]:
                break
        episodes.append((np.array(states), np.array(actions), np.array(rewards)))
    return episodes


def mc_evaluation(
    episodes: list[Episode], n_states: int, gamma: float = 1.0, first_visit: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo state values: V(s) = mean return after visits to s (S&B sec. 5.1).

    Returns V (S,) (0 for unvisited states) and the number of returns averaged per state (S,).
    """
    total = np.zeros(n_states)
    count = np.zeros(n_states, dtype=np.int64)
    for states, _, rewards in episodes:
        g = 0.0
        returns = np.zeros(len(rewards))
        for t in range(len(rewards) - 1, -1, -1):
            g = rewards[t] + gamma * g
            returns[t] = g
        seen: set[int] = set()
        for t, s in enumerate(states[:-1]):
            if first_visit and int(s) in seen:
                continue
            seen.add(int(s))
            total[s] += returns[t]
            count[s] += 1
    return total / np.maximum(count, 1), count


def model_values(model: TableLookupModel, policy: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """V (S,) of `policy` in the estimated MDP (P, R), by solving V = R_pi + gamma P_pi V.

    This is the certainty-equivalence value that Monte-Carlo on sampled episodes converges
    to (S&B Example 6.4). Terminal and unvisited states get 0.
    """
    P = np.einsum("sa,sat->st", policy, model.transition_probs)
    R = np.einsum("sa,sa->s", policy, model.mean_rewards)
    live = (model.counts.sum(axis=1) > 0) & ~model.terminal_states
    P = P[np.ix_(live, live)]
    try:
        v_live = np.linalg.solve(np.eye(int(live.sum())) - gamma * P, R[live])
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "model_values: I - gamma P_pi is singular (the policy never terminates in the "
            "model); use gamma < 1"
        ) from exc
    v = np.zeros(model.n_states)
    v[live] = v_live
    return v


def epsilon_greedy(q: np.ndarray, epsilon: float) -> np.ndarray:
    """(S, A) epsilon-greedy policy for Q (S, A); ties share the greedy mass equally."""
    best = q == q.max(axis=1, keepdims=True)
    return epsilon / q.shape[1] + (1 - epsilon) * best / best.sum(axis=1, keepdims=True)


def sarsa_planning(
    model: TableLookupModel,
    start_probs: np.ndarray,
    n_episodes: int,
    rng: np.random.Generator,
    alpha: float = 0.1,
    epsilon: float = 0.1,
    gamma: float = 0.95,
    max_steps: int = 1000,
) -> np.ndarray:
    """Sarsa (S&B sec. 6.4) on episodes simulated from the model; returns Q (S, A).

    Actions never tried in a state cannot be simulated, so the behaviour policy chooses only
    among the actions the model has data for; a simulated episode that reaches a state with
    no data at all (the experience was cut there) ends with a zero bootstrap.
    """
    q = np.zeros((model.n_states, model.n_actions))
    known = model.counts > 0
    terminal = model.terminal_states

    def choose(s: int) -> int:
        options = np.flatnonzero(known[s])
        if rng.random() < epsilon:
            return int(rng.choice(options))
        values = q[s, options]
        return int(rng.choice(options[values == values.max()]))

    for _ in range(n_episodes):
        s = int(rng.choice(model.n_states, p=start_probs))
        a = choose(s)
        for _ in range(max_steps):
            s_next, r, done = (v[0] for v in model.sample([s], [a], rng))
            if done or terminal[s_next] or not known[s_next].any():
                q[s, a] += alpha * (r - q[s, a])
                break
            a_next = choose(int(s_next))
            q[s, a] += alpha * (r + gamma * q[s_next, a_next] - q[s, a])
            s, a = int(s_next), a_next
    return q


def q_planning(
    model: TableLookupModel,
    n_updates: int,
    rng: np.random.Generator,
    alpha: float = 0.1,
    gamma: float = 0.95,
    batch: int = 1,
) -> np.ndarray:
    """Random-sample one-step tabular Q-planning (S&B sec. 8.1); returns Q (S, A).

    Each update draws (s, a) uniformly among the pairs the model has data for, samples
    (r, s') from the model and applies a Q-learning update. `batch` > 1 applies that many
    draws at once against the same Q (a synchronous sweep; faster, same fixed point).
    """
    q = np.zeros((model.n_states, model.n_actions))
    pairs = np.argwhere(model.counts > 0)
    if pairs.size == 0:
        raise ValueError("q_planning: the model has no experience to plan from")
    for _ in range(0, n_updates, batch):
        s, a = pairs[rng.integers(0, len(pairs), batch)].T
        s_next, r, done = model.sample(s, a, rng)
        target = r + gamma * np.where(done, 0.0, q[s_next].max(axis=1))
        # Repeated (s, a) within a batch: the last write wins, which is one ordinary update.
        q[s, a] += alpha * (target - q[s, a])
    return q


@dataclasses.dataclass(frozen=True)
class ABResult:
    """The AB example: model estimates and values, indexed by state (A, B, T)."""

    counts: np.ndarray  # N(s, a=0) (3,)
    transition_probs: np.ndarray  # P(s' | s, a=0) (3, 3)
    mean_rewards: np.ndarray  # R(s, a=0) (3,)
    lecture_mc: np.ndarray  # MC values (3,) from the lecture's eight sampled episodes
    sampled_mc: np.ndarray  # MC values (3,) from `n_sampled` episodes sampled here
    sampled_visits: np.ndarray  # returns averaged per state (3,)
    model_values: np.ndarray  # exact values of the estimated MDP (3,)
    n_sampled: int


def run_ab(n_sampled: int, rng: np.random.Generator) -> ABResult:
    """Build the table-lookup model from the 8 AB episodes, sample, and evaluate by MC."""
    model, start = TableLookupModel.from_episodes(AB_EPISODES, n_states=3, n_actions=1)
    policy = np.ones((3, 1))
    sampled = sample_episodes(model, start, policy, n_sampled, rng)
    v_sampled, visits = mc_evaluation(sampled, 3)
    v_lecture, _ = mc_evaluation(LECTURE_SAMPLED_EPISODES, 3)
    return ABResult(
        counts=model.counts[:, 0],
        transition_probs=model.transition_probs[:, 0, :],
        mean_rewards=model.mean_rewards[:, 0],
        lecture_mc=v_lecture,
        sampled_mc=v_sampled,
        sampled_visits=visits,
        model_values=model_values(model, policy),
        n_sampled=n_sampled,
    )

"""Collision queries for a loaded arm: which link pairs to check, and whether a configuration
touches itself or the table (used to keep sampled goals physically reachable)."""

from __future__ import annotations

import itertools

ALLOWED_GAP = 1e-3  # m; link pairs closer than this at home touch by design and are skipped


def checked_pairs(client, body: int) -> list[tuple[int, int]]:
    """Link index pairs of `body` to test for self-collision (base link is -1).

    Skips parent/child pairs and pairs already within ALLOWED_GAP in the current (home)
    configuration, like the disabled-collision list of an SRDF: such pairs overlap by design
    in most URDFs (primitive or convex hulls around joints) and would flag every pose.
    """
    links = [-1, *range(client.getNumJoints(body))]
    parent = {j: client.getJointInfo(body, j)[16] for j in links[1:]}
    client.performCollisionDetection()
    pairs = []
    for a, b in itertools.combinations(links, 2):
        if parent.get(b) == a or parent.get(a) == b:
            continue
        if not client.getClosestPoints(body, body, ALLOWED_GAP, a, b):
            pairs.append((a, b))
    return pairs


def in_collision(client, body: int, pairs: list[tuple[int, int]], table: int) -> bool:
    """True if any of `pairs` of `body` touch, or any link of `body` except the base touches
    `table`. Uses the current joint positions."""
    client.performCollisionDetection()
    for a, b in pairs:
        if client.getClosestPoints(body, body, 0.0, a, b):
            return True
    return any(
        client.getClosestPoints(body, table, 0.0, link, -1)
        for link in range(client.getNumJoints(body))
    )

"""What ``jaxrl envs`` lists: each built-in env's action space and observation shape, written
down so that the listing does not build (and import Brax for) every env. ``tests/test_envs.py``
checks every entry against the env itself; envs registered later are described by building them.
"""

from __future__ import annotations

__all__ = ["BUILTIN_SPACES"]

BUILTIN_SPACES: dict[str, tuple[str, tuple[int, ...]]] = {
    "CartPole-v1": ("discrete 2", (4,)),
    "Pendulum-v1": ("continuous 1", (3,)),
    "Acrobot-v1": ("discrete 3", (6,)),
    "MountainCar-v0": ("discrete 3", (2,)),
    "MountainCarContinuous-v0": ("continuous 1", (2,)),
    "Asterix-MinAtar": ("discrete 5", (10, 10, 4)),
    "Breakout-MinAtar": ("discrete 3", (10, 10, 4)),
    "Freeway-MinAtar": ("discrete 3", (10, 10, 7)),
    "Seaquest-MinAtar": ("discrete 6", (10, 10, 10)),
    "SpaceInvaders-MinAtar": ("discrete 4", (10, 10, 6)),
    "Catch-bsuite": ("discrete 3", (10, 5)),
    "DeepSea-bsuite": ("discrete 2", (8, 8)),
    "MemoryChain-bsuite": ("discrete 2", (3,)),
    "UmbrellaChain-bsuite": ("discrete 2", (3,)),
    "DiscountingChain-bsuite": ("discrete 5", (2,)),
    "SimpleBandit-bsuite": ("discrete 11", (1, 1)),
    "FourRooms-misc": ("discrete 4", (4,)),
    "MetaMaze-misc": ("discrete 4", (15,)),
    "PointRobot-misc": ("continuous 2", (6,)),
    "BernoulliBandit-misc": ("discrete 2", (4,)),
    "GaussianBandit-misc": ("discrete 2", (4,)),
    "Reacher-misc": ("continuous 2", (8,)),
    "Swimmer-misc": ("continuous 2", (16,)),
    "Pong-misc": ("discrete 3", (30, 40, 3)),
    "FrozenLake-misc": ("discrete 4", ()),
    "brax/ant": ("continuous 8", (27,)),
    "brax/halfcheetah": ("continuous 6", (17,)),
    "brax/hopper": ("continuous 3", (11,)),
    "brax/humanoid": ("continuous 17", (244,)),
    "brax/humanoidstandup": ("continuous 17", (244,)),
    "brax/inverted_pendulum": ("continuous 1", (4,)),
    "brax/inverted_double_pendulum": ("continuous 1", (8,)),
    "brax/pusher": ("continuous 7", (23,)),
    "brax/reacher": ("continuous 2", (11,)),
    "brax/swimmer": ("continuous 2", (8,)),
    "brax/walker2d": ("continuous 6", (17,)),
    "PointGoal-v0": ("discrete 4", (4,)),
    "pgx/tic_tac_toe": ("discrete 9", (3, 3, 2)),
    "pgx/connect_four": ("discrete 7", (6, 7, 2)),
    "LinearSystem-v0": ("continuous 1", (2,)),
    "Gridworld-v0": ("discrete 4", (16,)),
    "KArmedBandit-v0": ("discrete 2", (1,)),
    "PointNav-v0": ("continuous 2", (2,)),
    "PendulumStarts-v0": ("continuous 1", (3,)),
}

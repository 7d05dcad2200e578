"""``make(env_id)``: one entry point for gymnax, Brax and user-registered environments."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from jaxrl.envs.brax_env import BRAX_ENVS, BraxEnv, BraxParams
from jaxrl.envs.gymnax_env import GymnaxEnv

__all__ = ["list_envs", "make", "register"]

# Left out: ids that download data at run time (MNISTBandit-bsuite).
GYMNAX_ENVS = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar", "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite",
    "UmbrellaChain-bsuite", "DiscountingChain-bsuite", "SimpleBandit-bsuite", "FourRooms-misc",
    "MetaMaze-misc", "PointRobot-misc", "BernoulliBandit-misc", "GaussianBandit-misc",
    "Reacher-misc", "Swimmer-misc", "Pong-misc", "FrozenLake-misc",
)

EnvFactory = Callable[..., tuple[Any, Any]]
_REGISTRY: dict[str, EnvFactory] = {}


def register(env_id: str, factory: EnvFactory, *, overwrite: bool = False) -> None:
    """Make ``env_id`` available to ``make`` (and the CLI's ``--env``).

    ``factory(**kwargs) -> (env, env_params)`` where ``env`` follows ``jaxrl.envs.Environment``
    (subclassing ``jaxrl.envs.TimeLimitedEnv`` gives time limits and auto-reset for free).
    """
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"environment id {env_id!r} is already registered; "
                         "pass overwrite=True to replace it")
    _REGISTRY[env_id] = factory


def list_envs() -> list[str]:
    """All ids ``make`` accepts, in registration order."""
    return list(_REGISTRY)


def make(env_id: str, **kwargs: Any) -> tuple[Any, Any]:
    """Build an environment and its default params: ``env, env_params = make("CartPole-v1")``.

    gymnax ids as gymnax registers them; Brax as ``brax/<name>`` (keyword ``backend``, default
    ``"spring"``; ``max_steps_in_episode``, default 1000). Unknown ids raise ``ValueError`` naming
    the closest known ids.
    """
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, list(_REGISTRY), n=3, cutoff=0.4)
        if not close:
            lowered = env_id.lower()
            close = [k for k in _REGISTRY if lowered in k.lower()][:3]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}.{hint} "
                         "Run `jaxrl envs` to list every id.")
    return _REGISTRY[env_id](**kwargs)


def _gymnax_factory(env_id: str) -> EnvFactory:
    def factory(**kwargs: Any) -> tuple[GymnaxEnv, Any]:
        import gymnax

        gymnax_env, params = gymnax.make(env_id)
        if kwargs:
            params = params.replace(**kwargs)
        return GymnaxEnv(gymnax_env, env_id), params

    return factory


def _brax_factory(name: str) -> EnvFactory:
    def factory(max_steps_in_episode: int = 1000, **kwargs: Any) -> tuple[BraxEnv, BraxParams]:
        return BraxEnv(name, **kwargs), BraxParams(max_steps_in_episode=max_steps_in_episode)

    return factory


for _env_id in GYMNAX_ENVS:
    register(_env_id, _gymnax_factory(_env_id))
for _name in BRAX_ENVS:
    register(f"brax/{_name}", _brax_factory(_name))

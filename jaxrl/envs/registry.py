"""``make(env_id)``: one entry point for gymnax, Brax and user-registered environments."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from jaxrl.envs.brax_env import BRAX_ENVS, BraxEnv, BraxParams
from jaxrl.envs.gymnax_env import GymnaxEnv

__all__ = ["CAPABILITIES", "capabilities", "describe", "list_envs", "make", "register"]

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
_CAPABILITIES: dict[str, frozenset[str]] = {}

CAPABILITIES = ("differentiable", "tabular")
"""What an env can offer beyond the protocol, for the algorithms that need it
(``jaxrl.registry``): gradients through ``step`` (``"differentiable"``), an exact transition
table (``"tabular"``)."""


def register(env_id: str, factory: EnvFactory, *, overwrite: bool = False,
             provides: tuple[str, ...] = ()) -> None:
    """Make ``env_id`` available to ``make`` (and the CLI's ``--env``).

    ``factory(**kwargs) -> (env, env_params)`` where ``env`` follows ``jaxrl.envs.Environment``
    (subclassing ``jaxrl.envs.TimeLimitedEnv`` gives time limits and auto-reset for free).
    ``provides`` lists the env's ``CAPABILITIES``.
    """
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"environment id {env_id!r} is already registered; "
                         "pass overwrite=True to replace it")
    unknown = sorted(set(provides) - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}")
    _REGISTRY[env_id] = factory
    _CAPABILITIES[env_id] = frozenset(provides)


def list_envs(capability: str | None = None) -> list[str]:
    """All ids ``make`` accepts (those providing ``capability``, if given), in registration
    order."""
    return [env_id for env_id in _REGISTRY
            if capability is None or capability in _CAPABILITIES[env_id]]


def describe(env_id: str) -> str:
    """``"discrete 2, obs (4,)"``: the env's action space and observation shape, from
    ``catalog.BUILTIN_SPACES`` for the built-in envs (no env is built), else by building it."""
    from jaxrl.envs.catalog import BUILTIN_SPACES

    if env_id in BUILTIN_SPACES:
        actions, obs_shape = BUILTIN_SPACES[env_id]
    else:
        from jaxrl.envs.spaces import Discrete

        env, env_params = make(env_id)
        space = env.action_space(env_params)
        actions = (f"discrete {space.n}" if isinstance(space, Discrete)
                   else f"continuous {space.shape[0] if len(space.shape) == 1 else space.shape}")
        obs_shape = tuple(env.observation_space(env_params).shape)
    return f"{actions}, obs {obs_shape}"


def capabilities(env_id: str) -> frozenset[str]:
    """The ``CAPABILITIES`` registered for ``env_id`` (empty for an unknown id)."""
    return _CAPABILITIES.get(env_id, frozenset())


def make(env_id: str, **kwargs: Any) -> tuple[Any, Any]:
    """Build an environment and its default params: ``env, env_params = make("CartPole-v1")``.

    ``kwargs`` are the env's arguments: for gymnax ids its constructor's (``size=20`` for
    ``DeepSea-bsuite``) and its env-param fields (``max_steps_in_episode``); for Brax, as
    ``brax/<name>``, ``backend`` (default ``"spring"``), ``max_steps_in_episode`` (default 1000)
    and the Brax env's own keywords. Unknown ids raise ``ValueError`` naming the closest known
    ids; unknown arguments name the accepted ones.
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
        """Constructor arguments (DeepSea's ``size``) go to ``gymnax.make``, env-param fields
        (``max_steps_in_episode``) replace the defaults that constructor gives."""
        import dataclasses
        import inspect

        import gymnax

        probe_env, probe_params = gymnax.make(env_id)
        constructor = set(inspect.signature(type(probe_env).__init__).parameters) - {"self"}
        param_fields = {field.name for field in dataclasses.fields(probe_params)}
        unknown = sorted(set(kwargs) - constructor - param_fields)
        if unknown:
            raise ValueError(f"{env_id} takes no argument {', '.join(unknown)}; constructor "
                             f"arguments: {', '.join(sorted(constructor)) or 'none'}; env params: "
                             f"{', '.join(sorted(param_fields))}")
        arguments = {k: v for k, v in kwargs.items() if k in constructor}
        gymnax_env, params = (gymnax.make(env_id, **arguments) if arguments
                              else (probe_env, probe_params))
        overrides = {k: v for k, v in kwargs.items() if k not in constructor}
        if overrides:
            params = params.replace(**overrides)
        return GymnaxEnv(gymnax_env, env_id), params

    return factory


BRAX_ONLY_GENERALIZED = ("swimmer",)
"""Brax envs that support no pipeline but ``generalized`` (their default backend here)."""


def _brax_factory(name: str) -> EnvFactory:
    def factory(max_steps_in_episode: int = 1000, **kwargs: Any) -> tuple[BraxEnv, BraxParams]:
        if name in BRAX_ONLY_GENERALIZED:
            kwargs.setdefault("backend", "generalized")
        return BraxEnv(name, **kwargs), BraxParams(max_steps_in_episode=max_steps_in_episode)

    return factory


GYMNAX_PROVIDES: dict[str, tuple[str, ...]] = {"FrozenLake-misc": ("tabular",)}
"""The ``CAPABILITIES`` of gymnax ids (``jaxrl.envs.tabular`` writes FrozenLake's table)."""
# gymnax 1.0.1's envs with `supports_transition_gradients` (GymnaxEnv enables them).
GYMNAX_PROVIDES.update({env_id: ("differentiable",) for env_id in (
    "Pendulum-v1", "MountainCarContinuous-v0", "PointRobot-misc", "Reacher-misc",
    "Swimmer-misc")})

for _env_id in GYMNAX_ENVS:
    register(_env_id, _gymnax_factory(_env_id), provides=GYMNAX_PROVIDES.get(_env_id, ()))
for _name in BRAX_ENVS:
    register(f"brax/{_name}", _brax_factory(_name), provides=("differentiable",))

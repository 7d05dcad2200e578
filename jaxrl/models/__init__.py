"""flax networks: torsos, policy heads returning distrax distributions, critics, ensembles."""

from jaxrl.models.actor_critic import (
    ActorCritic,
    ContinuousCritic,
    CriticEnsemble,
    make_actor_critic,
    make_torso,
)
from jaxrl.models.distributions import TanhNormal
from jaxrl.models.heads import CategoricalHead, GaussianHead, QHead, TanhGaussianHead, ValueHead
from jaxrl.models.imitation import ImitationPolicy, imitation_action
from jaxrl.models.off_policy import (
    DeterministicActor,
    PolicyNetwork,
    QNetwork,
    make_deterministic_actor,
    make_q_network,
    make_tanh_gaussian_actor,
)
from jaxrl.models.torsos import ACTIVATIONS, CNN, MLP, activation_fn, orthogonal

__all__ = [
    "ACTIVATIONS", "ActorCritic", "CNN", "CategoricalHead", "ContinuousCritic", "CriticEnsemble",
    "DeterministicActor", "GaussianHead", "ImitationPolicy", "MLP", "PolicyNetwork", "QHead",
    "QNetwork", "TanhGaussianHead", "TanhNormal", "ValueHead", "activation_fn", "imitation_action",
    "make_actor_critic", "make_deterministic_actor", "make_q_network", "make_tanh_gaussian_actor",
    "make_torso", "orthogonal",
]

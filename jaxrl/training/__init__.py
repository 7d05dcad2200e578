"""The family loops and the agent API that every algorithm in ``jaxrl.agents`` is built on.

- ``agent``: the ``Agent`` protocol, ``train_from_agent`` and the acting protocol (memory,
  planners on the env state).
- ``config``: fields with allowed ranges, one ``check_config``, legacy field names.
- ``on_policy``: rollout → estimate → gradient epochs (REINFORCE, A2C, PPO; NPG / TRPO through
  ``natural_gradient``).
- ``off_policy``: the replay loop, collect → buffer → learn → evaluate (DQN, soft Q, DDPG, TD3,
  SAC through ``q_learning`` and ``deterministic``).
- ``offline``: dataset → learn → evaluate (BC, CQL, IQL, AWAC, TD3+BC).
- ``extensions``: the reward transform both online loops apply.
- ``optim``: flattened Adam, gradient norms, target networks.

Submodules are imported by name (``from jaxrl.training import on_policy``): importing this
package loads nothing else, so the family loops never form an import cycle with the agents.
"""

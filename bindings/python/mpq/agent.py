"""DDPG agent (HAQ's actor-critic) over numpy float32 arrays."""

from __future__ import annotations

import os
from ctypes import byref, c_double, c_int, c_void_p
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ._handle import Handle, as_f32, ptr
from ._lib import DdpgInfo, InvalidArgumentError, lib, param_info_dict, walk_param_info

PathLike = Union[str, "os.PathLike[str]"]


def ddpg_params() -> Dict[str, Dict[str, Any]]:
    """{name: info} of every agent parameter (bounds, default, description with its source)."""
    out = {}
    for info in walk_param_info(lib.mpq_ddpg_param_info):
        d = param_info_dict(info)
        out[d.pop("name")] = d
    return out


class Agent(Handle):
    """A DDPG agent with HAQ's defaults: ``Agent(state_dim, action_dim, goal_dim=0, seed=234,
    **params)``; parameters by name (``lr_actor=1e-4``, ``batch=64``, ...)."""

    def __init__(self, state_dim=None, action_dim=1, goal_dim=0, seed=234, _ptr=None, **params):
        if _ptr is None:
            out = c_void_p()
            lib.mpq_ddpg_create(byref(out), int(state_dim), int(goal_dim), int(action_dim),
                                int(seed))
            _ptr = out
        self._own(_ptr, lib.mpq_ddpg_destroy)
        self.state_dim, self.action_dim, self.goal_dim = state_dim, action_dim, goal_dim
        for key, value in params.items():
            self[key] = value

    @classmethod
    def load(cls, path: PathLike, state_dim: int, action_dim: int,
             goal_dim: int = 0) -> "Agent":
        """Loads an agent saved by :meth:`save` (the C API does not expose the widths, so the
        caller states them)."""
        out = c_void_p()
        lib.mpq_ddpg_load(byref(out), os.fsencode(path))
        return cls(state_dim, action_dim, goal_dim, _ptr=out)

    def save(self, path: PathLike) -> None:
        lib.mpq_ddpg_save(self, os.fsencode(path))

    def __setitem__(self, name, value):
        pid = c_int()
        lib.mpq_ddpg_param_find(name.encode(), byref(pid))
        lib.mpq_ddpg_set_param(self, pid.value, float(value))

    def __getitem__(self, name):
        pid, v = c_int(), c_double()
        lib.mpq_ddpg_param_find(name.encode(), byref(pid))
        lib.mpq_ddpg_get_param(self, pid.value, byref(v))
        return v.value

    def _rows(self, arr, width, name):
        arr = as_f32(arr, name)
        if width is not None and arr.size % width:
            raise InvalidArgumentError("%s: %d values is not a multiple of %d"
                                       % (name, arr.size, width))
        return arr

    def act(self, states: np.ndarray, goals: Optional[np.ndarray] = None,
            explore: bool = True) -> np.ndarray:
        """Actions in [0,1] for a batch of states ([n, state_dim] float32)."""
        states = self._rows(states, self.state_dim, "states")
        n = states.shape[0] if states.ndim == 2 else 1
        if goals is not None:
            goals = self._rows(goals, self.goal_dim, "goals")
        actions = np.empty((n, self.action_dim), dtype=np.float32)
        lib.mpq_ddpg_act(self, ptr(states), ptr(goals), n, int(bool(explore)), ptr(actions))
        return actions if states.ndim == 2 else actions[0]

    def observe(self, state: Any, action: Any, reward: float, next_state: Any,
                done: bool = False, goal: Any = None) -> None:
        """Stages one transition of the current episode."""
        f = [np.ascontiguousarray(v, dtype=np.float32) if v is not None else None
             for v in (state, goal, action, next_state)]
        lib.mpq_ddpg_observe(self, ptr(f[0]), ptr(f[1]), ptr(f[2]), float(reward), ptr(f[3]),
                             int(bool(done)))

    def end_episode(self, final_reward: float) -> None:
        lib.mpq_ddpg_end_episode(self, float(final_reward))

    def update(self) -> Tuple[float, float]:
        """One gradient update; returns (critic_loss, actor_loss)."""
        c, a = c_double(), c_double()
        lib.mpq_ddpg_update(self, byref(c), byref(a))
        return c.value, a.value

    def q_value(self, states: np.ndarray, actions: np.ndarray,
                goals: Optional[np.ndarray] = None) -> np.ndarray:
        states = self._rows(states, self.state_dim, "states")
        actions = self._rows(actions, self.action_dim, "actions")
        n = states.shape[0] if states.ndim == 2 else 1
        q = np.empty(n, dtype=np.float32)
        lib.mpq_ddpg_q_value(self, ptr(states), ptr(goals), ptr(actions), n, ptr(q))
        return q

    @property
    def info(self) -> Dict[str, Any]:
        """Counters: episode, steps, updates, replay_size, baseline, losses, sigma."""
        i = DdpgInfo()
        lib.mpq_ddpg_get_info(self, byref(i))
        return i.as_dict()

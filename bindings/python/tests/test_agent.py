"""The DDPG agent through numpy arrays."""

import numpy as np
import pytest

import mpq
from conftest import requires

pytestmark = requires("mpq_ddpg_create")


def test_act_observe_update_and_determinism(tmp_path):
    def episode_run(seed):
        with mpq.Agent(state_dim=4, action_dim=1, seed=seed, warmup=0, batch=8,
                       hidden1=16, hidden2=16) as agent:
            rng = np.random.default_rng(0)
            actions = []
            for ep in range(6):
                s = rng.random(4, dtype=np.float32)
                for t in range(5):
                    a = agent.act(s[None, :], explore=True)[0]
                    actions.append(float(a[0]))
                    s2 = rng.random(4, dtype=np.float32)
                    agent.observe(s, a, 0.0, s2, done=(t == 4))
                    s = s2
                agent.end_episode(final_reward=float(np.mean(actions[-5:])))
            info = agent.info
            greedy = agent.act(rng.random((3, 4), dtype=np.float32), explore=False)
            q = agent.q_value(np.zeros((3, 4), np.float32), greedy)
            return actions, info, greedy, q

    a1, info, greedy, q = episode_run(5)
    a2, _, greedy2, q2 = episode_run(5)
    assert a1 == a2 and np.array_equal(greedy, greedy2) and np.array_equal(q, q2)
    assert all(0.0 <= a <= 1.0 for a in a1)
    assert greedy.shape == (3, 1) and q.shape == (3,)
    assert info["episode"] == 6 and info["steps"] == 30 and info["updates"] > 0


def test_params_by_name():
    params = mpq.ddpg_params()
    assert params["lr_actor"]["default"] == pytest.approx(1e-4)
    with mpq.Agent(3, 2) as agent:
        assert agent.act(np.zeros((5, 3), np.float32)).shape == (5, 2)
        agent["lr_critic"] = 5e-4
        assert agent["lr_critic"] == pytest.approx(5e-4)
        with pytest.raises(mpq.NotFoundError):
            agent["no_such"] = 1
        with pytest.raises(mpq.DTypeError):
            agent.act(np.zeros((2, 3)))


def test_save_and_load(tmp_path):
    with mpq.Agent(3, 2, seed=9, hidden1=8, hidden2=8) as agent:
        states = np.random.default_rng(1).random((4, 3), dtype=np.float32)
        before = agent.act(states, explore=False)
        agent.save(tmp_path / "agent.mpqc")
    with mpq.Agent.load(tmp_path / "agent.mpqc", 3, 2) as again:
        assert np.array_equal(again.act(states, explore=False), before)
        assert again["hidden1"] == 8

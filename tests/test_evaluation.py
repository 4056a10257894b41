"""Evaluation must not change training: no buffer updates, no dropout, no RNG drawn."""

from __future__ import annotations

import torch

from ganlab.train.evaluation import evaluation_mode


def test_evaluation_mode_restores_buffers_and_disables_dropout():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(64, 4)
    with evaluation_mode(net):
        first, second = net(x), net(x)
        assert torch.equal(first, second), "dropout must be off"
        assert not torch.equal(net[1].running_mean, before["1.running_mean"]), "batch statistics are used"
    after = net.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert net.training and net[2].training
    torch.manual_seed(0)
    a, b = net(x), net(x)
    assert not torch.equal(a, b), "dropout is back on after evaluation"

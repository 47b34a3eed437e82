"""The reference model against the spec's table, written out here independently."""

import pytest
import torch
import torch.nn.functional as F

from glcic_fast import CompletionNetwork, ContextDiscriminator, fold_batchnorm
from glcic_fast.folding import FoldedNetwork
from glcic_fast.layers import macs_per_pixel
from glcic_fast.model import count_parameters

# The table of ../shared/docs/glcic.md, typed in again: (kind, kernel, dilation, stride, out).
SPEC_TABLE = [
    ("conv", 5, 1, 1, 64), ("conv", 3, 1, 2, 128), ("conv", 3, 1, 1, 128), ("conv", 3, 1, 2, 256),
    ("conv", 3, 1, 1, 256), ("conv", 3, 1, 1, 256), ("conv", 3, 2, 1, 256), ("conv", 3, 4, 1, 256),
    ("conv", 3, 8, 1, 256), ("conv", 3, 16, 1, 256), ("conv", 3, 1, 1, 256), ("conv", 3, 1, 1, 256),
    ("deconv", 4, 1, 2, 128), ("conv", 3, 1, 1, 128), ("deconv", 4, 1, 2, 64), ("conv", 3, 1, 1, 32),
    ("conv", 3, 1, 1, 3),
]


def test_parameter_count_and_cost():
    net = CompletionNetwork()
    assert count_parameters(net) == 6_072_131
    assert macs_per_pixel() == 496_736
    weights = sum(b.conv.weight.numel() for b in net.layers)
    biases = sum(b.conv.bias.numel() for b in net.layers)
    assert (weights, biases) == (6_063_200, 2_979)


def test_conv_weight_shapes_follow_the_table():
    net = CompletionNetwork()
    cin = 4
    for block, (kind, k, d, s, cout) in zip(net.layers, SPEC_TABLE, strict=True):
        expected = (cin, cout, k, k) if kind == "deconv" else (cout, cin, k, k)
        assert tuple(block.conv.weight.shape) == expected
        assert block.conv.stride == (s, s)
        if kind == "conv":
            assert block.conv.dilation == (d, d)
            assert block.conv.padding == (d * (k - 1) // 2,) * 2
        cin = cout
    assert net.layers[-1].bn is None and all(b.bn is not None for b in net.layers[:-1])


def independent_forward(net, x):
    """Conv -> BN(eval) -> ReLU per the spec table, straight from the tensors."""
    for block, (kind, k, d, s, cout) in zip(net.layers, SPEC_TABLE):
        w, b = block.conv.weight, block.conv.bias
        if kind == "deconv":
            x = F.conv_transpose2d(x, w, b, stride=2, padding=1)
        else:
            x = F.conv2d(x, w, b, stride=s, padding=d * (k - 1) // 2, dilation=d)
        if block.bn is None:
            return torch.sigmoid(x)
        bn = block.bn
        x = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
        x = F.relu(x * bn.weight[:, None, None] + bn.bias[:, None, None])
    raise AssertionError("table ended without the output layer")


@torch.no_grad()
def test_matches_independent_implementation(random_network):
    x = torch.randn(2, 4, 36, 52, generator=torch.Generator().manual_seed(1))
    ref = independent_forward(random_network, x)
    out = random_network(x)
    assert out.shape == (2, 3, 36, 52)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("shape", [(2, 4, 36, 52), (3, 4, 24, 16)])
def test_folded_equals_unfolded(random_network, shape):
    layers = fold_batchnorm(random_network)
    assert len(layers) == 17 and layers[-1].activation == "sigmoid"
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(FoldedNetwork(layers)(x), random_network(x), atol=1e-5, rtol=0)


@torch.no_grad()
def test_folded_glcic_pytorch_order():
    from conftest import make_random_network

    net = make_random_network(CompletionNetwork, torch, seed=3, order="glcic-pytorch")
    layers = fold_batchnorm(net)
    assert layers[0].post_scale is not None and layers[-1].post_scale is None
    x = torch.randn(2, 4, 20, 28)
    torch.testing.assert_close(FoldedNetwork(layers)(x), net(x), atol=1e-5, rtol=0)


def test_rejects_sizes_that_are_not_multiples_of_4(random_network):
    with pytest.raises(ValueError, match="multiples of 4"):
        random_network(torch.zeros(1, 4, 30, 32))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        random_network(torch.zeros(1, 3, 32, 32))


def test_discriminator_shapes():
    d = ContextDiscriminator()
    fc_inputs = (d.global_branch.fc.in_features, d.local_branch.fc.in_features, d.head.in_features)
    assert fc_inputs == (8192, 8192, 2048)
    small = ContextDiscriminator(image_size=64, local_size=32)
    logits = small(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32))
    assert logits.shape == (2,)
    with pytest.raises(ValueError, match="64x64"):
        small(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))

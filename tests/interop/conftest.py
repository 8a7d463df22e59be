import pytest
import torch


@pytest.fixture
def randomize():
    """Give every parameter random values, norms included.

    Fresh models have unit norm weights and zero biases, so a conversion that dropped or
    swapped them would go unnoticed; random values make every tensor count in the logits.
    """

    def apply(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in module.named_parameters():
                noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype)
                is_norm_scale = p.ndim == 1 and name.endswith("weight")
                p.copy_(1.0 + 0.2 * noise if is_norm_scale else 0.1 * noise)
        return module.eval()

    return apply

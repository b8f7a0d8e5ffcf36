"""Flatten layer."""
from minidl.nn.module import Module


class Flatten(Module):
    """Merges dimensions start_dim..end_dim into one; the default keeps the batch axis:
    (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

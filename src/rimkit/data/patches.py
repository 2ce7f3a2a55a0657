"""Patches as in the RIM paper: 32x32 windows at stride 4, with flips and 90-degree rotations.

Batches are a pure function of ``(seed, iteration, rank)``: each epoch is a seeded permutation
of all patch positions, and each patch gets one of the 8 dihedral transforms from a generator
seeded by the iteration. A resumed run therefore sees exactly the batches it would have seen
without the stop, and ``world`` processes see disjoint shards of every batch.

Example:
    >>> import numpy as np
    >>> images = [np.zeros((1, 40, 40), np.uint8), np.zeros((1, 36, 44), np.uint8)]
    >>> patches = PatchSet(images, size=32, stride=4)
    >>> len(patches)      # 3*3 + 2*4 positions
    17
    >>> PatchSampler(patches, batch_size=5, seed=0).batch(0).shape
    torch.Size([5, 1, 32, 32])
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from rimkit.data.images import as_unit_float


def seeded(*keys: int) -> torch.Generator:
    """A generator whose state depends only on ``keys`` (e.g. seed, iteration, rank).

    Example:
        >>> first, again = seeded(0, 5), seeded(0, 5)
        >>> torch.equal(torch.rand(3, generator=first), torch.rand(3, generator=again))
        True
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) % 2**63)


def dihedral(patch: Tensor, transform: int) -> Tensor:
    """One of the 8 flips/rotations of the last two axes (``transform`` in 0..7).

    Example:
        >>> x = torch.arange(4.0).reshape(2, 2)
        >>> dihedral(x, 0).tolist(), dihedral(x, 4).tolist()  # as it is; mirrored
        ([[0.0, 1.0], [2.0, 3.0]], [[1.0, 0.0], [3.0, 2.0]])
    """
    out = torch.rot90(patch, transform % 4, dims=(-2, -1))
    return out.flip(-1) if transform >= 4 else out


class PatchSet:
    """All ``size x size`` windows at ``stride`` of a list of uint8 or uint16 ``(C, H, W)``
    images (:func:`rimkit.data.images.to_stored`)."""

    def __init__(self, images: list[np.ndarray], size: int = 32, stride: int = 4) -> None:
        if size < 1 or stride < 1:
            raise ValueError(f"patch size and stride must be >= 1, got {size} and {stride}")
        if not images:
            raise ValueError("no images to cut patches from")
        small = [img.shape[1:] for img in images if min(img.shape[1:]) < size]
        if small:
            raise ValueError(
                f"patch size {size} is larger than {len(small)} image(s), e.g. "
                f"{small[0][0]}x{small[0][1]}; use a smaller patch size"
            )
        self.images = images
        self.size = size
        self.channels = images[0].shape[0]
        positions = []
        for i, img in enumerate(images):
            tops = np.arange(0, img.shape[1] - size + 1, stride)
            lefts = np.arange(0, img.shape[2] - size + 1, stride)
            grid = np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)
            positions.append(np.column_stack([np.full(len(grid), i), grid]))
        self.positions = np.concatenate(positions)  # (N, 3): image, top, left

    def __len__(self) -> int:
        return len(self.positions)

    def patch(self, index: int) -> Tensor:
        """Window ``index`` as a float32 tensor ``(C, size, size)`` in ``[0, 1]``."""
        i, top, left = self.positions[index]
        window = self.images[i][:, top : top + self.size, left : left + self.size]
        return as_unit_float(window)

    def gather(self, indices: Tensor, transforms: Tensor | None = None) -> Tensor:
        """Float patches ``(B, C, size, size)`` in ``[0, 1]``, optionally transformed."""
        out = torch.stack([self.patch(int(k)) for k in indices])
        if transforms is not None:
            out = torch.stack([dihedral(p, int(t)) for p, t in zip(out, transforms, strict=True)])
        return out


class PatchSampler:
    """Deterministic batches: ``batch(iteration)`` depends only on the seed and the iteration.

    With ``world`` processes, process ``rank`` gets its own ``batch_size`` patches of each
    global batch of ``batch_size * world`` patches.
    """

    def __init__(
        self,
        patches: PatchSet,
        batch_size: int,
        seed: int,
        augment: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.patches = patches
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.rank = rank
        self.world = world
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            n = len(self.patches)
            self._order = torch.randperm(n, generator=seeded(self.seed, epoch))
            self._epoch = epoch
        return self._order

    def epoch_of(self, iteration: int) -> float:
        """Fraction of passes over all patches after ``iteration`` batches."""
        return iteration * self.batch_size * self.world / len(self.patches)

    def batch(self, iteration: int) -> Tensor:
        n = len(self.patches)
        start = (iteration * self.world + self.rank) * self.batch_size
        positions = torch.arange(start, start + self.batch_size)
        indices = torch.empty(self.batch_size, dtype=torch.long)
        for epoch in positions.div(n, rounding_mode="floor").unique().tolist():
            in_epoch = positions.div(n, rounding_mode="floor") == epoch
            indices[in_epoch] = self._permutation(epoch)[positions[in_epoch] % n]
        transforms = None
        if self.augment:
            gen = seeded(self.seed, iteration, self.rank, 1)
            transforms = torch.randint(0, 8, (self.batch_size,), generator=gen)
        return self.patches.gather(indices, transforms)


def validation_patches(patches: PatchSet, count: int, seed: int) -> Tensor:
    """``count`` distinct patches drawn with a fixed seed (no augmentation)."""
    count = min(count, len(patches))
    indices = torch.randperm(len(patches), generator=seeded(seed, 7))[:count]
    return patches.gather(indices)

"""Training data: image folders cached as uint8 (uint16 past 8 bits), patch sets and
deterministic batches."""

from rimkit.data.images import ImageFolder, list_images
from rimkit.data.patches import PatchSampler, PatchSet, dihedral, seeded, validation_patches

__all__ = [
    "ImageFolder",
    "PatchSampler",
    "PatchSet",
    "dihedral",
    "list_images",
    "seeded",
    "validation_patches",
]

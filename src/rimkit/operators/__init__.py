"""Forward models ``y = A x``: one :class:`LinearOperator` contract for all."""

from rimkit.operators.base import (
    Adjoint,
    ComplexAsChannels,
    Composition,
    Identity,
    LinearOperator,
    RealImages,
    channels_to_complex,
    check_image,
    complex_to_channels,
    magnitude,
)
from rimkit.operators.bicubic import BicubicDownsample, bicubic_upsample, imresize_matrix
from rimkit.operators.blur import (
    BOUNDARIES,
    DEFAULT_KERNEL,
    KERNEL_SPECS,
    Blur,
    box_kernel,
    gaussian_kernel,
    kernel_from_spec,
    motion_kernel,
)
from rimkit.operators.espirit import espirit_maps
from rimkit.operators.inpaint import Inpainting, random_mask
from rimkit.operators.lensing import SIE, Lensing, LensingSetup, angular_grid
from rimkit.operators.mri import (
    MRI_MASKS,
    CartesianMRI,
    fft2c,
    gaussian_2d_mask,
    ifft2c,
    variable_density_mask,
)
from rimkit.operators.multicoil import (
    MIN_CALIBRATION,
    MultiCoilMRI,
    calibration_size,
    coil_sensitivities,
    sampled_mask,
    synthetic_coil_maps,
)
from rimkit.operators.projection import (
    PROJECTION_KINDS,
    FourierProjection,
    MatrixProjection,
    random_projection,
    rms_row_norm,
)

__all__ = [
    "BOUNDARIES",
    "DEFAULT_KERNEL",
    "KERNEL_SPECS",
    "MIN_CALIBRATION",
    "MRI_MASKS",
    "PROJECTION_KINDS",
    "SIE",
    "Adjoint",
    "BicubicDownsample",
    "Blur",
    "CartesianMRI",
    "ComplexAsChannels",
    "Composition",
    "FourierProjection",
    "Identity",
    "Inpainting",
    "Lensing",
    "LensingSetup",
    "LinearOperator",
    "MatrixProjection",
    "MultiCoilMRI",
    "RealImages",
    "angular_grid",
    "bicubic_upsample",
    "box_kernel",
    "calibration_size",
    "channels_to_complex",
    "check_image",
    "coil_sensitivities",
    "complex_to_channels",
    "espirit_maps",
    "fft2c",
    "gaussian_2d_mask",
    "gaussian_kernel",
    "ifft2c",
    "imresize_matrix",
    "kernel_from_spec",
    "magnitude",
    "motion_kernel",
    "random_mask",
    "random_projection",
    "rms_row_norm",
    "sampled_mask",
    "synthetic_coil_maps",
    "variable_density_mask",
]

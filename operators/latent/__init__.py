"""SILO's learned latent operators H(z, sigma) ~ E(A(D(z))) (silo.md §2) and their files."""

from operators.latent.checkpoint import (
    FORMAT,
    export_for_shipping,
    load_operator,
    read_checkpoint,
    save_checkpoint,
)
from operators.latent.factory import (
    VARIANTS,
    build_network,
    get_variant,
    network_architecture,
    parameter_count,
)
from operators.latent.lookup import (
    active_operator_folders,
    default_operator_folders,
    find_operator,
    resolve_trained_operator,
    using_operator_folders,
)
from operators.latent.naming import operator_filename, train_command
from operators.latent.noise_cnn import NoiseCNN
from operators.latent.operator import LearnedLatentOperator
from operators.latent.preserve_cnn import PreserveCNN
from operators.latent.readout import ReadoutNetwork, UNetFeatureReader, UNetFeatures

__all__ = [
    "FORMAT",
    "VARIANTS",
    "LearnedLatentOperator",
    "NoiseCNN",
    "PreserveCNN",
    "ReadoutNetwork",
    "UNetFeatureReader",
    "UNetFeatures",
    "active_operator_folders",
    "build_network",
    "default_operator_folders",
    "find_operator",
    "get_variant",
    "load_operator",
    "network_architecture",
    "operator_filename",
    "parameter_count",
    "read_checkpoint",
    "export_for_shipping",
    "resolve_trained_operator",
    "save_checkpoint",
    "train_command",
    "using_operator_folders",
]

"""End-to-end jobs: what each CLI subcommand calls. Every function here reads inputs,
builds library objects, runs one algorithm and writes outputs atomically.

The methods and their options: :mod:`.methods`; local and Ray execution of temporal windows:
:mod:`.worker`, :mod:`.distributed`, :mod:`.scale`; file jobs: :mod:`.jobs`.
"""

from .jobs import degrade_file, evaluate_files, restore_file
from .methods import (
    METHODS,
    ADMMTVOptions,
    BaselineOptions,
    CGOptions,
    DDSOptions,
    DenoiserOptions,
    DiffIR2VROptions,
    DPSOptions,
    Options,
    PVDNetOptions,
    SVIOptions,
    make_options,
)
from .scale import restore_video

__all__ = [
    "METHODS", "degrade_file", "evaluate_files", "restore_file", "restore_video", "make_options", "Options", "CGOptions", "ADMMTVOptions",
    "BaselineOptions", "DenoiserOptions", "SVIOptions", "DDSOptions", "DPSOptions", "DiffIR2VROptions", "PVDNetOptions",
]

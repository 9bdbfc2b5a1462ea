"""Network architectures (L2: imports only torch, :mod:`vidrestore.tensor` and :mod:`vidrestore.errors`).

:data:`NETS` maps the registry name written to ``config.json`` by
:func:`vidrestore.checkpoint.save_pretrained` to the network class.
"""

from __future__ import annotations

from torch import nn

from .adm_unet import ADM_PRESETS, ADMUNet, adm_from_flags
from .lgcvd import LGCVD_PRESETS, LGCVDUNet, local_condition
from .liteflownet import LITEFLOWNET_PRESETS, LiteFlowNet
from .pvdnet import PVDNET_PRESETS, PVDNet, PVDNetDeblur

__all__ = [
    "NETS", "get_net", "ADMUNet", "ADM_PRESETS", "adm_from_flags",
    "LiteFlowNet", "LITEFLOWNET_PRESETS", "PVDNet", "PVDNetDeblur", "PVDNET_PRESETS",
    "LGCVDUNet", "LGCVD_PRESETS", "local_condition",
]

NETS: dict[str, type[nn.Module]] = {
    "adm_unet": ADMUNet,
    "liteflownet": LiteFlowNet,
    "pvdnet": PVDNet,
    "pvdnet_deblur": PVDNetDeblur,
    "lgcvd_unet": LGCVDUNet,
}


def get_net(name: str) -> type[nn.Module]:
    """Return the network class registered as ``name``.

    Raises:
        ValueError: If ``name`` is unknown (the message lists the valid names).
    """
    try:
        return NETS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; valid names: {', '.join(sorted(NETS))}") from None

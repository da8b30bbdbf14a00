"""Pure-torch layer of scdeal: networks and losses (no data loading, no training loops).

The public names are those of :mod:`scdeal.nn.modules` (extractors), :mod:`scdeal.nn.networks`
(head, deployable models), :mod:`scdeal.nn.multidrug` (the joint model's head and loss) and :mod:`scdeal.nn.losses` (their ``__all__``), re-exported here.
"""

from . import losses, modules, multidrug, networks
from .losses import *  # noqa: F403 - re-export, listed once in losses.__all__
from .modules import *  # noqa: F403 - re-export, listed once in modules.__all__
from .multidrug import *  # noqa: F403 - re-export, listed once in multidrug.__all__
from .networks import *  # noqa: F403 - re-export, listed once in networks.__all__

__all__ = [*losses.__all__, *modules.__all__, *multidrug.__all__, *networks.__all__]

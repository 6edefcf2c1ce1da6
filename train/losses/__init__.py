"""Training objectives: dense CPC (InfoNCE) and the cooperative CoCon losses."""

from .cooperative import cocon_loss, instances, sim_loss, standardised_sync_loss, sync_loss
from .cpc import Gather, cpc_loss

__all__ = ["cpc_loss", "sim_loss", "sync_loss", "standardised_sync_loss", "cocon_loss", "instances", "Gather"]

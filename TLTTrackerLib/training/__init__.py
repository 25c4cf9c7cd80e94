"""Training of the TLT network (not shipped in the Slicer extension): ``fit`` (the loop, checkpoints, resume,
validation, logging), ``engine`` (one step, validation pass), ``distributed`` (torchrun/DDP helpers)."""

"""In-process network for the protocol core: the same ChordNode objects the real
peers run, wired through a direct-call transport and a virtual clock."""

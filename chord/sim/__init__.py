"""In-process network for the protocol core: the same ChordNode objects the real
peers run, wired through a direct-call transport and a virtual clock. Pure like the rest
of chord/: the experiments are functions returning their rows; printing them, worker
processes and figures are devtools.sim's."""

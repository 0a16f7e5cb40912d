"""The simulator's command line and figures: ``python -m devtools.sim EXPERIMENT`` runs
one of chord.sim's experiments (pure functions returning their rows), spreads their
tasks over worker processes, prints the table or JSON and draws the figure (matplotlib).
The I/O lives here so that chord/sim/ stays as pure as the rest of chord/."""

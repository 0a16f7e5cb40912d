"""Developer tooling, outside the adapters: a local ring of peer processes
(``local_ring``, ``launcher``), fault injection inside a peer (``fault_rules``,
``fault_injection``) and the simulator's command line (``sim``). May import chord/,
config/, services.rpc, services.storage, grpc and tabulate (devtools.sim: chord.sim only,
with tabulate and matplotlib). Of the product only run_node.py (``--local-ring``),
services.peer (the fault interceptors a peer installs when ``fault_rules`` is set) and
config/ (``fault_rules`` to validate a rule set) import it.
"""

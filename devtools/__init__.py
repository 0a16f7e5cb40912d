"""Developer tooling, outside the adapters: a local ring of peer processes
(``local_ring``, ``launcher``) and fault injection inside a peer (``fault_rules``,
``fault_injection``). May import chord/, config/ and services/. Of the product only
run_node.py (``--local-ring``), services.peer (the fault interceptors a peer installs
when ``fault_rules`` is set) and config/ (``fault_rules`` to validate a rule set) import it.
"""

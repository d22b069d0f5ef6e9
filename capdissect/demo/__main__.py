"""``python -m capdissect.demo``: run one lesson scenario (see ``--list``).

Also the entry point of the child that runs a crossing scenario inside its network
namespace (``--here``).  A module of its own, so that running it does not import
``scenarios`` a second time as ``__main__``.
"""

from capdissect.demo.scenarios import main

raise SystemExit(main())

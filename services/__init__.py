"""What an engine node and a worker both do, over the stores: no HTTP, no WebSocket, no Celery.

* ``core``: ``Core``, the resources these services use (Redis, the stores, the
  clock), built once per process by ``build_core`` from a ``CoreSettings``;
* ``commits``: change an attempt (engine first, then one compare-and-set
  commit, retried on a lost race): the one loop behind candidate requests,
  proctor actions and expiry;
* ``expiry``: end attempts whose time is over (the node's sweeper and the
  worker's sweep task);
* ``reports``: item analysis and CSV exports of persisted results.

``handlers/`` and ``tasks/`` import this package and never each other.
"""

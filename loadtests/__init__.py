"""Load tests (Locust) and the one-machine benchmark.

Locust monkey-patches with gevent and pins its own pytest: it runs from its own
virtualenv, never inside the test process.
"""

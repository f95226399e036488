"""Workers that drain: handlers bound to queues, a lease-based job queue and broker consumers.

``Worker`` (worker.py) is what users declare; ``Runner`` (runner.py) is the effector the driver feeds; each
backend implements the ``Broker`` protocol (broker.py), and one contract suite (tests/contract) holds them to it.
"""

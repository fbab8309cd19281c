"""Controllers for the rollout tests, in a module that worker processes can import.

The test suite runs with ``--import-mode=importlib``, so classes defined in
test modules cannot be unpickled in spawned workers; this module is imported
by name (``helpers`` is on the tests' ``sys.path``: setup.cfg).
"""


class PlainPD:
    """A picklable controller without PyBullet: joint-space PD torques, counts resets."""

    def __init__(self, stiffness: float) -> None:
        self.stiffness = stiffness
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def command(self, q, qd, q_ref, qd_ref, qdd_ref):
        return self.stiffness * (q_ref - q) + 0.2 * self.stiffness * (qd_ref - qd)

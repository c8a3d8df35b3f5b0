"""What the reference tests share for reporting: a pass/fail counter that
prints one line per check, and the error measure they compare with their
tolerances."""
import numpy as np


class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        """Counts and prints one check; returns ok."""
        ok = bool(ok)
        if ok:
            self.passed += 1
            print(f"ok    {name} {detail}")
        else:
            self.failed += 1
            print(f"FAIL  {name} {detail}")
        return ok


def rel_err(got, ref):
    """max |got - ref| / max |ref| (inf when the shapes differ)."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = max(np.abs(ref).max(), 1e-30)
    return float(np.abs(got - ref).max() / scale)

"""Gradient-check cases for erf (minidl.ops.special) and the embedding lookup (minidl.ops.embedding)."""
import numpy as np

import minidl as mdl
import minidl.nn.functional as F
from gradcases import cases_for

# Repeated rows (their gradients must add up) and, for the padding case, row 1. The padding row gets
# no gradient by definition, not by calculus, so that case zeroes it first: then its true derivative
# is 0 too, and the check sees that leaving its positions out of the scatter keeps every other row's.
INDEX = np.array([[0, 2, 2], [1, 2, 0]])
NOT_ROW_1 = np.array([[1.0], [0.0], [1.0], [1.0]])

CASES = (
    cases_for("Erf", lambda x: mdl.erf(x), [[()], [(4,)], [(2, 3)]], double=True)
    + cases_for("Erf", lambda x: mdl.erf(x * 2), [[(3,)]], double=True)  # into the tails, to |x| = 4
    + cases_for("Embedding", lambda w: F.embedding(INDEX, w), [[(3, 2)]], double=True)
    + cases_for("Embedding", lambda w: F.embedding(INDEX, w * NOT_ROW_1, padding_idx=1), [[(4, 2)]], double=True)
)

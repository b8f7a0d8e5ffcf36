"""Gradient-check cases for convolution (minidl.ops.conv): the public conv2d and each of its
three Functions called directly, with second derivatives, since each one's backward is built
from the other two. Shapes are tiny: gradcheck runs two forward passes per input element."""
from minidl.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight, conv2d
from gradcases import cases_for

# The output sizes below follow floor((H + 2p - d(k-1) - 1) / s) + 1.
CASES = (
    cases_for("Conv2d", lambda x, w: conv2d(x, w), [[(1, 1, 4, 4), (2, 1, 3, 3)]], double=True)
    + cases_for("Conv2d", lambda x, w, b: conv2d(x, w, b, stride=2, padding=1),
                [[(2, 2, 5, 4), (3, 2, 3, 2), (3,)]], double=True)
    + cases_for("Conv2d", lambda x, w, b: conv2d(x, w, b, padding=(2, 1), dilation=2, groups=2),
                [[(1, 4, 4, 5), (2, 2, 2, 3), (2,)]])
    + cases_for("Conv2d", lambda x, w: Conv2d(stride=(1, 2), groups=2)(x, w), [[(2, 2, 3, 5), (4, 1, 2, 2)]])
    # gy (N, OC, OH, OW) for an input of size (5, 4): OH = (5 + 2 - 3)//2 + 1 = 3, OW = (4 + 2 - 2)//2 + 1 = 3
    + cases_for("Conv2dGradInput", lambda gy, w: Conv2dGradInput((5, 4), stride=2, padding=1)(gy, w),
                [[(2, 3, 3, 3), (3, 2, 3, 2)]], double=True)
    # input size 6, kernel 2 dilated by 2 (extent 3), stride 3: OH = OW = (6 - 3)//3 + 1 = 2
    + cases_for("Conv2dGradInput", lambda gy, w: Conv2dGradInput((6, 6), stride=3, dilation=2, groups=2)(gy, w),
                [[(1, 4, 2, 2), (4, 1, 2, 2)]], double=True)
    + cases_for("Conv2dGradWeight", lambda x, gy: Conv2dGradWeight((3, 2), stride=2, padding=1)(x, gy),
                [[(2, 2, 5, 4), (2, 3, 3, 3)]], double=True)
    + cases_for("Conv2dGradWeight", lambda x, gy: Conv2dGradWeight((2, 2), stride=3, dilation=2, groups=2)(x, gy),
                [[(1, 2, 6, 6), (1, 4, 2, 2)]], double=True)
)

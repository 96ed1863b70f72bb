"""numpy_manual with a bug that also makes it faster: w1 is never trained.

It skips the gradient of w1, the largest product of the backward pass, so
it runs faster than every correct implementation. A test registers it; the
harness must call it "disagrees" and never rank it, however fast it is.
"""

import numpy as np

from sidebyside.implementations.two_layer.numpy_manual import Net as Correct


class Net(Correct):
    def train_step(self, x, y):
        h_relu = np.maximum(x.dot(self.w1), 0)
        error = h_relu.dot(self.w2) - y
        loss = np.square(error).sum()
        self.w2 -= self.learning_rate * h_relu.T.dot(2.0 * error)  # the bug: w1 is left as it was
        return loss

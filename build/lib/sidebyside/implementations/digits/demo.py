"""`python -m sidebyside.implementations.digits.<name>`: train on the digits as a tutorial would.

Kept apart from problem.py, which data.py imports: the demo needs both.
"""

from sidebyside.implementations.digits.data import load_data
from sidebyside.implementations.digits.problem import DigitsProblem, accuracy, batch_order, initial_weights, train_loss


def demo(Net, problem=DigitsProblem(), path=None):
    """Train for the problem's epochs on the digits; print loss and test accuracy per epoch.

    This is what `python -m sidebyside.implementations.digits.<name>` runs.
    """
    data = load_data(problem, path)
    net = Net(initial_weights(problem, data.D_in), problem)
    x_train, y_train = net.prepare(data.x_train, data.y_train)
    x_test = net.prepare(data.x_test)
    print(f"{data.source}: {len(data.y_train)} training and {len(data.y_test)} test images of {data.D_in} pixels")
    for epoch, batches in enumerate(batch_order(problem, len(data.y_train)), start=1):
        losses = net.fit_epoch(x_train, y_train, batches)
        test_accuracy = accuracy(net.predict(x_test), data.y_test)
        print(f"epoch {epoch}: train loss {train_loss(losses, batches):.4f}, test accuracy {100 * test_accuracy:.1f} %")

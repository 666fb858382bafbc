"""End to end: a small CNN (conv-BN-relu-pool-linear) memorises 64 random samples with SGD momentum."""
import lucid
from lucid import nn, optim


def overfit(seed: int, max_steps: int = 300):
    """Train full-batch until the training batch is classified perfectly; return what happened."""
    lucid.manual_seed(seed)
    x = lucid.randn(64, 3, 8, 8)
    y = lucid.randint(0, 10, (64,))
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for step in range(max_steps):
        logits = model(x)
        loss = loss_fn(logits, y)
        losses.append(loss.item())
        # at least 30 steps, so that BatchNorm's running statistics (momentum 0.1) are within 0.9^30 = 4% of the batch's
        if nn.functional.accuracy(logits, y)[0] == 100.0 and step >= 30:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with lucid.no_grad():
        eval_acc = nn.functional.accuracy(model(x), y)[0]
    return step, losses, eval_acc


def test_small_cnn_overfits_random_samples():
    steps, losses, eval_acc = overfit(seed=0)
    assert steps < 299, f"no 100% training accuracy after {steps + 1} steps"
    assert losses[-1] < 0.2 * losses[0]
    assert eval_acc == 100.0  # also with the running statistics BatchNorm tracked meanwhile

"""A training script written the way PyTorch users write them, running on minidl: only the imports
differ from the PyTorch version (which is in the comment below them).

A small CNN on MNIST with AdamW, a cosine learning-rate schedule, gradient clipping, label smoothing,
a validation set split off with random_split, and a max-norm constraint applied to the classifier's
weights in place under no_grad after every step.

    python examples/pytorch_style_mnist.py [--epochs 3] [--subset N] [--data-root DIR]

With the defaults, on the full 54,000 training images, the three epochs reached 99.1%, 99.1% and
99.3% validation accuracy in 8.6 minutes on a 2-core CPU (shared with other work at the time).
"""
import argparse

# The PyTorch version imports, instead of the five lines after this comment:
#   import torch
#   from torch import nn, optim
#   import torch.nn.functional as F
#   from torch.utils.data import DataLoader, Subset, random_split
#   from torchvision import datasets, transforms
import minidl as torch
from minidl import nn, optim
import minidl.nn.functional as F
from minidl.data import DataLoader, Subset, random_split
from minidl.data import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(torch.flatten(x, 1))
        return self.fc2(F.relu(self.fc1(x)))


def evaluate(model, loader):
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for data, target in loader:
            output = model(data)
            total_loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += (output.argmax(dim=1) == target).sum().item()
            n += len(target)
    return total_loss / n, correct / n


def main(argv=None):
    parser = argparse.ArgumentParser(description="A CNN on MNIST, PyTorch style")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--subset", type=int, default=None, help="use the first N training images only")
    parser.add_argument("--max-norm", type=float, default=3.0,
                        help="the largest norm of each output unit's incoming weights")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(args.data_root, train=True, download=True, transform=transform)
    if args.subset:
        full = Subset(full, range(args.subset))
    train_set, val_set = random_split(full, [0.9, 0.1])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=500)

    model = Net()
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data), target, label_smoothing=0.1)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            with torch.no_grad():
                w = model.fc2.weight
                w *= (args.max_norm / w.pow(2).sum(dim=1, keepdim=True).sqrt()).clamp(max=1.0)
        scheduler.step()
        val_loss, val_acc = evaluate(model, val_loader)
        history.append((val_loss, val_acc))
        print(f"epoch {epoch}  lr {scheduler.get_last_lr()[0]:.2e}  val loss {val_loss:.4f}  val acc {val_acc:.4f}")
    return model, history


if __name__ == "__main__":
    main()

"""Code copied verbatim from the chapter (../shared/seed), for tests that check our files and numbers against it."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F


class ReseauMNIST(nn.Module):
    """Chapter 4.2, verbatim."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.dropout1 = nn.Dropout(0.3)
        self.fc2 = nn.Linear(256, 128)
        self.dropout2 = nn.Dropout(0.3)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = self.dropout1(x)
        x = F.relu(self.fc2(x))
        x = self.dropout2(x)
        x = self.fc3(x)
        return x

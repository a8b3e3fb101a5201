"""Reference for the end-to-end model test (tests/test_nn_module.cpp): a small CNN built from
most layer kinds, its state dict, one forward on a fixed batch, the cross-entropy loss and
every parameter's gradient, in float64. Run once: /usr/bin/python3 gen_nn_model.py"""
import os
import torch
import torch.nn as nn
import fixtures

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=1, dilation=1, groups=2), nn.Tanh(), nn.AvgPool2d(2))
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = self.flatten(self.features(x))
        x = torch.nn.functional.gelu(self.norm(self.fc1(x)))
        return self.fc2(x)


net = Net()
net.train()
x = torch.randn(5, 2, 8, 8)
target = torch.tensor([0, 2, 1, 1, 0])
state = {k: v.clone() for k, v in net.state_dict().items()}
logits = net(x)
loss = torch.nn.functional.cross_entropy(logits, target)
loss.backward()

out = {}
for k, v in state.items():
    out["state." + k] = v
out["x"] = x
out["target"] = target
out["logits"] = logits
out["loss"] = loss.reshape(1)
for k, p in net.named_parameters():
    out["grad." + k] = p.grad
for k, b in net.named_buffers():
    out["after." + k] = b  # running statistics after the training-mode forward
net.eval()
with torch.no_grad():
    out["eval_logits"] = net(x)
fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_model.txt"), out)

"""The ResNet family in plain PyTorch, for side-by-side checks of lucid's models.

Written from torchvision's resnet.py and the ResNeSt reference code (torchvision itself
is not needed). Module names match the reference libraries, so
``lucid.models.reference_state_dict(model, "torchvision")`` loads straight into them.
Used by tests/test_models_torch.py (same logits and gradients) and
benchmarks/train_step.py (same network, timed). Importing it needs torch;
benchmarks/reference_arch.py turns a lucid config into RefNet's arguments without it.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as TF


class TVBlock(tnn.Module):
    """torchvision BasicBlock (expansion 1) or Bottleneck (expansion 4, stride on the 3x3)."""

    def __init__(self, inplanes, planes, stride, downsample, bottleneck, groups=1, base_width=64):
        super().__init__()
        self.bottleneck = bottleneck
        if bottleneck:
            width = int(planes * (base_width / 64.0)) * groups
            self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
            self.bn2 = tnn.BatchNorm2d(width)
            self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
        else:
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(TF.relu(out)))
        return TF.relu(out + (x if self.downsample is None else self.downsample(x)))

class SplAt(tnn.Module):
    """The reference SplAtConv2d (conv, bn0, relu, fc1, bn1, relu, fc2, rSoftMax)."""

    def __init__(self, channels, stride, cardinality, radix):
        super().__init__()
        inter = max(channels * radix // 4, 32)
        self.radix, self.cardinality = radix, cardinality
        self.conv = tnn.Conv2d(channels, channels * radix, 3, stride, 1, groups=cardinality * radix, bias=False)
        self.bn0 = tnn.BatchNorm2d(channels * radix)
        self.fc1 = tnn.Conv2d(channels, inter, 1, groups=cardinality)
        self.bn1 = tnn.BatchNorm2d(inter)
        self.fc2 = tnn.Conv2d(inter, channels * radix, 1, groups=cardinality)

    def forward(self, x):
        x = TF.relu(self.bn0(self.conv(x)))
        batch, rchannel = x.shape[:2]
        splited = torch.split(x, rchannel // self.radix, dim=1) if self.radix > 1 else [x]
        gap = TF.adaptive_avg_pool2d(sum(splited), 1)
        atten = self.fc2(TF.relu(self.bn1(self.fc1(gap))))
        if self.radix > 1:
            atten = atten.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
            atten = TF.softmax(atten, dim=1).reshape(batch, -1, 1, 1)
            return sum(a * s for a, s in zip(torch.split(atten, rchannel // self.radix, dim=1), splited))
        return torch.sigmoid(atten) * x

class RefResNeStBlock(tnn.Module):
    """The reference ResNeSt Bottleneck (avd after the split-attention conv, avd_first=False)."""

    def __init__(self, inplanes, planes, stride, downsample, cardinality, base_width, radix):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * cardinality
        self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.avd_layer = tnn.AvgPool2d(3, stride, padding=1) if stride > 1 else None
        self.conv2 = SplAt(width, 1, cardinality, radix)
        self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv2(TF.relu(self.bn1(self.conv1(x))))
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        return TF.relu(out + (x if self.downsample is None else self.downsample(x)))

class RefNet(tnn.Module):
    """torchvision's ResNet, or with ``resnest`` the ResNeSt reference (deep stem, avg-down, SplAt).

    ``cifar`` swaps the 7x7 stem and max-pool for one 3x3 stride-1 conv (lucid's "cifar" stem).
    """

    def __init__(self, layers, channels, num_classes, bottleneck=True, groups=1, base_width=64,
                 resnest=False, stem_width=64, radix=2, cifar=False, in_channels=3):
        super().__init__()
        if cifar:  # lucid's "cifar" stem: one 3x3 stride-1 conv and no max-pool
            self.conv1 = tnn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)
            inplanes = stem_width
        elif resnest:
            w = stem_width
            self.conv1 = tnn.Sequential(
                tnn.Conv2d(in_channels, w, 3, 2, 1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                tnn.Conv2d(w, w, 3, 1, 1, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(),
                tnn.Conv2d(w, 2 * w, 3, 1, 1, bias=False))
            inplanes = 2 * w
        else:
            self.conv1 = tnn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False)
            inplanes = stem_width
        self.bn1 = tnn.BatchNorm2d(inplanes)
        self.maxpool = tnn.Identity() if cifar else tnn.MaxPool2d(3, 2, 1)
        expansion = 4 if bottleneck or resnest else 1
        for i, (planes, n) in enumerate(zip(channels, layers)):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes * expansion:
                conv = tnn.Conv2d(inplanes, planes * expansion, 1, 1 if resnest else stride, bias=False)
                pool = tnn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                down = tnn.Sequential(*([pool] if resnest else []), conv, tnn.BatchNorm2d(planes * expansion))
            blocks = []
            for j in range(n):
                cin, s, d = (inplanes, stride, down) if j == 0 else (planes * expansion, 1, None)
                if resnest:
                    blocks.append(RefResNeStBlock(cin, planes, s, d, groups, base_width, radix))
                else:
                    blocks.append(TVBlock(cin, planes, s, d, bottleneck, groups, base_width))
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            inplanes = planes * expansion
        self.n_stages = len(layers)
        self.fc = tnn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(TF.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(TF.adaptive_avg_pool2d(x, 1), 1))


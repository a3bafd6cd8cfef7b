"""A small fully convolutional U-Net with named pixel-wise heads, in plain torch (nothing pretrained).

Both page models use it: the Deep Watershed Detector (heads: class, energy, box size) and the newspaper
article segmenter (one head: background / article interior / article border). The encoder goes down to 1/16
(receptive field of a clef or a headline), the decoder back up to 1/2: outputs are at half the input size,
fine enough for a 2 px stem or a 12 px gutter and four times cheaper than full resolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

OUT_STRIDE = 2


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FCN(nn.Module):
    """U-Net: input (N, 1, H, W) gray in [0, 1] (ink = 1); output {head: (N, channels, ceil(H/2), ceil(W/2))}.

    `widths` are the encoder channels at 1/2, 1/4, 1/8 and 1/16; the decoder has `decoder` channels and only
    one 3x3 convolution per level, since on CPU the cost is in the high-resolution layers.
    """

    def __init__(self, heads: dict[str, int], widths: tuple[int, ...] = (16, 32, 64, 96), decoder: int = 32):
        super().__init__()
        self.heads_spec, self.widths, self.decoder = dict(heads), tuple(widths), decoder
        self.stem = nn.Sequential(_conv(1, widths[0], 2), _conv(widths[0], widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_conv(widths[i], widths[i + 1], 2), _conv(widths[i + 1], widths[i + 1]))
            for i in range(len(widths) - 1)
        )
        self.top = nn.Conv2d(widths[-1], decoder, 1)
        self.lateral = nn.ModuleList(nn.Conv2d(w, decoder, 1) for w in widths[:-1])
        self.smooth = nn.ModuleList(_conv(decoder, decoder) for _ in widths[:-1])
        self.heads = nn.ModuleDict({name: nn.Conv2d(decoder, ch, 1) for name, ch in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = [self.stem(x)]
        for layer in self.down:
            feats.append(layer(feats[-1]))
        y = self.top(feats[-1])
        for i in range(len(self.lateral) - 1, -1, -1):  # 1/8 -> 1/4 -> 1/2
            skip = self.lateral[i](feats[i])
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip
            y = self.smooth[i](y)
        return {name: head(y) for name, head in self.heads.items()}


def to_input(gray_pages: list, device: str | torch.device = "cpu", pad_to: int = 16) -> torch.Tensor:
    """Gray uint8 pages (white paper) -> one padded float batch with ink = 1, sides a multiple of `pad_to`."""
    import numpy as np

    h = max(p.shape[0] for p in gray_pages)
    w = max(p.shape[1] for p in gray_pages)
    h, w = -(-h // pad_to) * pad_to, -(-w // pad_to) * pad_to
    batch = np.zeros((len(gray_pages), 1, h, w), np.float32)
    for i, p in enumerate(gray_pages):
        batch[i, 0, : p.shape[0], : p.shape[1]] = 1.0 - p.astype(np.float32) / 255.0
    return torch.from_numpy(batch).to(device)


def pick_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when there is one, else CPU; GPUs are configuration, CPU always works."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

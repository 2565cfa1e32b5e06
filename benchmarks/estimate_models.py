"""The architectures of AI Hub's published latency table, built from their public configurations with random
weights (a latency model needs only the graph): torchvision, timm, transformers, diffusers, ultralytics (also
MobileSAM and SAM2, split into encoder and decoder and patched for QNN as qai-hub-models does), and the networks no
installed library builds written out from their published definitions (ESRGAN, Real-ESRGAN's compact network,
U-Net, QuickSRNet, XLSR, YOLOv7-tiny, DeepLabV3+, DDRNet-23-slim, FFNet-40S, MiDaS's decoder, AOT-GAN,
LaMa-Dilated). Needs `pip install .[bench]`.

Each entry is keyed by the CSV's (model, component) and gives its family (for reports and the split) and a
builder returning the module and its example inputs at the shape AI Hub profiled. That is the CSV's input shape
(taken from info.yaml) except where the model's own `get_input_spec` in qai-hub-models says otherwise:
Unet-Segmentation runs at 640x1280 and FCN-ResNet50 at 520x520 (their info.yaml says 224x224; at 224 their
published times would mean 0.4-0.8 TMAC/s where every other large convolution network reaches 4-6), and MobileSAM's
and SAM2's encoders take SAM's 1024x1024 (the table's 720p is the app's image, resized outside the graph).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Built = tuple[nn.Module, list[torch.Tensor]]


@dataclass(frozen=True)
class Architecture:
    model: str
    component: str
    family: str
    build: Callable[[], Built]
    graph: str = ""  # the name of its graph; fine-tunes of one architecture (SD-1.5, ControlNet's and Riffusion's
                     # copies of it) share one graph, and one side of the split

    @property
    def graph_name(self) -> str:
        return self.graph or f"{self.model}.{self.component}"


def image(height: int, width: int | None = None) -> list[torch.Tensor]:
    """One RGB image, [1, 3, height, width]."""
    return [torch.randn(1, 3, height, width or height)]


def torchvision_model(name: str, size: int, **kwargs) -> Callable[[], Built]:
    def build() -> Built:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kwargs), image(size)
    return build


def fcn_resnet50() -> Built:
    import torchvision

    return OutputKey(torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None), "out"), image(520)


def timm_model(name: str, size: int) -> Callable[[], Built]:
    def build() -> Built:
        import timm

        return timm.create_model(name, pretrained=False), image(size)
    return build


class OutputKey(nn.Module):
    """One named output of a model that returns a dict or a tuple."""

    def __init__(self, model: nn.Module, key: str | int):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs)[self.key]


def bert_base() -> Built:
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(attn_implementation="eager"), add_pooling_layer=False)
    return OutputKey(model, 0), [torch.randint(0, 30522, (1, 384)), torch.ones(1, 384, dtype=torch.int64)]


def whisper_encoder(d_model: int, layers: int, heads: int) -> Callable[[], Built]:
    def build() -> Built:
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        config = WhisperConfig(d_model=d_model, encoder_layers=layers, encoder_attention_heads=heads,
                               encoder_ffn_dim=4 * d_model, attn_implementation="eager")
        return OutputKey(WhisperEncoder(config), 0), [torch.randn(1, 80, 3000)]
    return build


def segformer_b0() -> Built:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    model = SegformerForSemanticSegmentation(SegformerConfig(num_labels=150, attn_implementation="eager"))
    return OutputKey(model, 0), image(512)


def yolo(config: str) -> Callable[[], Built]:
    def build() -> Built:
        from ultralytics.nn.tasks import DetectionModel

        return OutputKey(DetectionModel(config, verbose=False), 0), image(640)
    return build


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's general x4v3 network: a plain conv stack with PReLU, pixel shuffle, plus the upsampled input."""

    def __init__(self, features: int = 64, convs: int = 32, scale: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), nn.PReLU(features)]
        for _ in range(convs):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.PReLU(features)]
        layers += [nn.Conv2d(features, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body, self.scale = nn.Sequential(*layers), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


class ResidualDenseBlock(nn.Module):
    def __init__(self, features: int = 64, growth: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1)
                                   for i in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for index, conv in enumerate(self.convs):
            y = conv(torch.cat(outputs, 1))
            outputs.append(nn.functional.leaky_relu(y, 0.2) if index < 4 else y)
        return x + 0.2 * outputs[-1]


class RRDBNet(nn.Module):
    """ESRGAN's generator (also Real-ESRGAN x4plus): 23 residual-in-residual dense blocks, two 2x upsamplings."""

    def __init__(self, features: int = 64, blocks: int = 23):
        super().__init__()
        self.first = nn.Conv2d(3, features, 3, padding=1)
        self.blocks = nn.Sequential(*(nn.Sequential(*(ResidualDenseBlock(features) for _ in range(3)))
                                      for _ in range(blocks)))
        self.body = nn.Conv2d(features, features, 3, padding=1)
        self.up1, self.up2 = nn.Conv2d(features, features, 3, padding=1), nn.Conv2d(features, features, 3, padding=1)
        self.hr, self.last = nn.Conv2d(features, features, 3, padding=1), nn.Conv2d(features, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda y: nn.functional.leaky_relu(y, 0.2)  # noqa: E731
        features = self.first(x)
        body = self.body(self.blocks(features))
        features = features + body
        features = act(self.up1(nn.functional.interpolate(features, scale_factor=2, mode="nearest")))
        features = act(self.up2(nn.functional.interpolate(features, scale_factor=2, mode="nearest")))
        return self.last(act(self.hr(features)))


class QuickSRNetLarge(nn.Module):
    """QuickSRNet-Large at 4x (AIMET model zoo): twelve 3x3 convs with clipped ReLU, the input added back through
    a 1x1 "anchor" conv, pixel shuffle."""

    def __init__(self, features: int = 64, convs: int = 11, scale: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), nn.Hardtanh(0.0, 1.0)]
        for _ in range(convs):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.Hardtanh(0.0, 1.0)]
        self.body, self.last = nn.Sequential(*layers), nn.Conv2d(features, 3 * scale * scale, 3, padding=1)
        self.anchor, self.shuffle = nn.Conv2d(3, 3 * scale * scale, 1), nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(nn.functional.hardtanh(self.last(self.body(x)) + self.anchor(x), 0.0, 1.0))


class XLSR(nn.Module):
    """XLSR at 4x (Ayazoglu 2021, AIMET model zoo): three blocks of a 4-group 3x3 conv and a 1x1 conv, beside a
    3x3 conv of the input; both concatenated, mixed, pixel-shuffled and clipped."""

    def __init__(self, features: int = 32, blocks: int = 3, scale: int = 4):
        super().__init__()
        block = lambda: [nn.Conv2d(features, features, 3, padding=1, groups=4), nn.ReLU(),  # noqa: E731
                         nn.Conv2d(features, features, 1), nn.ReLU()]
        self.residual = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(3, features, 3, padding=1), nn.ReLU(), nn.Conv2d(features, features, 1),
                                  *(layer for _ in range(blocks) for layer in block()))
        self.tail = nn.Sequential(nn.Conv2d(features + 16, features, 1), nn.ReLU(),
                                  nn.Conv2d(features, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.hardtanh(self.tail(torch.cat([self.body(x), self.residual(x)], 1)), 0.0, 1.0)


def conv_bn(inputs: int, outputs: int, kernel: int = 1, stride: int = 1, dilation: int = 1,
            activation: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """A convolution without bias (padded to keep the size at stride 1), BatchNorm and an activation."""
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, stride, dilation * (kernel // 2), dilation, bias=False),
                         nn.BatchNorm2d(outputs), activation())


def conv_bn_leaky(inputs: int, outputs: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """YOLOv7's Conv in its tiny variant: LeakyReLU(0.1) as the activation."""
    return conv_bn(inputs, outputs, kernel, stride, activation=lambda: nn.LeakyReLU(0.1))


class TinyElan(nn.Module):
    """YOLOv7-tiny's ELAN block: two 1x1 branches, two 3x3 convs on the second, all four concatenated and mixed."""

    def __init__(self, inputs: int, width: int, outputs: int):
        super().__init__()
        self.first, self.second = conv_bn_leaky(inputs, width), conv_bn_leaky(inputs, width)
        self.third, self.fourth = conv_bn_leaky(width, width, 3), conv_bn_leaky(width, width, 3)
        self.mix = conv_bn_leaky(4 * width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.first(x), self.second(x)
        third = self.third(second)
        return self.mix(torch.cat([self.fourth(third), third, second, first], 1))


class YoloV7Tiny(nn.Module):
    """YOLOv7-tiny (yolov7-tiny.yaml, 80 classes) at 640x640, with its detection head's decoding of boxes."""

    ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))

    def __init__(self, classes: int = 80):
        super().__init__()
        pool = lambda: nn.MaxPool2d(2, 2)  # noqa: E731
        self.stem = nn.Sequential(conv_bn_leaky(3, 32, 3, 2), conv_bn_leaky(32, 64, 3, 2), TinyElan(64, 32, 64))
        self.p3 = nn.Sequential(pool(), TinyElan(64, 64, 128))
        self.p4 = nn.Sequential(pool(), TinyElan(128, 128, 256))
        self.p5 = nn.Sequential(pool(), TinyElan(256, 256, 512))
        self.spp_a, self.spp_b = conv_bn_leaky(512, 256), conv_bn_leaky(512, 256)
        self.spp_mix, self.spp_out = conv_bn_leaky(1024, 256), conv_bn_leaky(512, 256)
        self.lateral5, self.route4, self.top4 = conv_bn_leaky(256, 128), conv_bn_leaky(256, 128), TinyElan(256, 64, 128)
        self.lateral4, self.route3, self.top3 = conv_bn_leaky(128, 64), conv_bn_leaky(128, 64), TinyElan(128, 32, 64)
        self.down3, self.bottom4 = conv_bn_leaky(64, 128, 3, 2), TinyElan(256, 64, 128)
        self.down4, self.bottom5 = conv_bn_leaky(128, 256, 3, 2), TinyElan(512, 128, 256)
        self.heads = nn.ModuleList(conv_bn_leaky(c, 2 * c, 3) for c in (64, 128, 256))
        self.detect = nn.ModuleList(nn.Conv2d(2 * c, 3 * (classes + 5), 1) for c in (64, 128, 256))
        self.outputs = classes + 5

    def decode(self, x: torch.Tensor, level: int) -> torch.Tensor:
        _, _, height, width = x.shape
        stride = 8 * 2 ** level
        y = x.sigmoid().view(1, 3, self.outputs, height, width).permute(0, 1, 3, 4, 2)
        rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        grid = torch.stack((columns, rows), 2).view(1, 1, height, width, 2).float()
        anchors = torch.tensor(self.ANCHORS[level], dtype=torch.float32).view(1, 3, 1, 1, 2)
        xy = (y[..., :2] * 2 - 0.5 + grid) * stride
        wh = (y[..., 2:4] * 2) ** 2 * anchors
        return torch.cat([xy, wh, y[..., 4:]], -1).view(1, -1, self.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p3 = self.p3(self.stem(x))
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        a = self.spp_a(p5)
        pooled = [nn.functional.max_pool2d(a, k, 1, k // 2) for k in (13, 9, 5)]
        top5 = self.spp_out(torch.cat([self.spp_mix(torch.cat([*pooled, a], 1)), self.spp_b(p5)], 1))
        upsample = lambda y: nn.functional.interpolate(y, scale_factor=2, mode="nearest")  # noqa: E731
        top4 = self.top4(torch.cat([upsample(self.lateral5(top5)), self.route4(p4)], 1))
        top3 = self.top3(torch.cat([upsample(self.lateral4(top4)), self.route3(p3)], 1))
        bottom4 = self.bottom4(torch.cat([self.down3(top3), top4], 1))
        bottom5 = self.bottom5(torch.cat([self.down4(bottom4), top5], 1))
        levels = [detect(head(y)) for y, head, detect in zip((top3, bottom4, bottom5), self.heads, self.detect)]
        return torch.cat([self.decode(y, level) for level, y in enumerate(levels)], 1)


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ on MobileNet-v2 at output stride 16 (jfzhang95/pytorch-deeplab-xception, which qai-hub-models
    wraps): ASPP at dilations 1/6/12/18 with image pooling, a decoder on the stride-4 features, 21 classes."""

    def __init__(self, classes: int = 21):
        super().__init__()
        import torchvision

        features = torchvision.models.mobilenet_v2(weights=None).features[:-1]  # the last 1x1 conv is not used
        features[14].conv[1][0].stride = (1, 1)  # output stride 16: the last stride-2 block keeps its resolution
        for block in features[15:]:
            depthwise = block.conv[1][0]
            depthwise.dilation, depthwise.padding = (2, 2), (2, 2)
        self.low, self.high = features[:4], features[4:]
        self.branches = nn.ModuleList([conv_bn(320, 256), *(conv_bn(320, 256, 3, dilation=d) for d in (6, 12, 18))])
        self.pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn(320, 256))
        self.project = conv_bn(5 * 256, 256)
        self.reduce = conv_bn(24, 48)
        self.decoder = nn.Sequential(conv_bn(304, 256, 3), conv_bn(256, 256, 3), nn.Conv2d(256, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def resize(y: torch.Tensor, size: torch.Size) -> torch.Tensor:
            return nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=True)

        low = self.low(x)
        high = self.high(low)
        pooled = resize(self.pooled(high), high.shape[2:])
        aspp = self.project(torch.cat([*(branch(high) for branch in self.branches), pooled], 1))
        logits = self.decoder(torch.cat([resize(aspp, low.shape[2:]), self.reduce(low)], 1))
        return resize(logits, x.shape[2:])


class Residual(nn.Module):
    """x + body(x)."""

    def __init__(self, *body: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetBlock(nn.Module):
    """A ResNet block as DDRNet and FFNet write it: two 3x3 convs (BasicBlock) or 1x1-3x3-1x1 to twice the width
    (DDRNet's Bottleneck), a 1x1 projection where the shape changes, ReLU after the sum unless `relu` is off."""

    def __init__(self, inputs: int, width: int, stride: int = 1, bottleneck: bool = False, relu: bool = True):
        super().__init__()
        outputs = 2 * width if bottleneck else width
        last = conv_bn(width, outputs, 1 if bottleneck else 3, activation=nn.Identity)
        first = ([conv_bn(inputs, width), conv_bn(width, width, 3, stride)] if bottleneck
                 else [conv_bn(inputs, width, 3, stride)])
        self.body = nn.Sequential(*first, last)
        self.shortcut = (conv_bn(inputs, outputs, 1, stride, activation=nn.Identity)
                         if stride != 1 or inputs != outputs else nn.Identity())
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x) + self.shortcut(x)
        return torch.relu(y) if self.relu else y


def ddr_stage(inputs: int, width: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(ResNetBlock(inputs, width, stride), ResNetBlock(width, width, relu=False))


def bn_relu_conv(inputs: int, outputs: int, kernel: int = 1) -> nn.Sequential:
    """DDRNet's pre-activated convolution: BatchNorm, ReLU, then a convolution without bias."""
    return nn.Sequential(nn.BatchNorm2d(inputs), nn.ReLU(),
                         nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=False))


def bilinear(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return nn.functional.interpolate(x, size=size, mode="bilinear")


class DeepAggregationPyramid(nn.Module):
    """DDRNet's DAPPM: the input average-pooled at four scales, each upsampled, added to the finer one and mixed."""

    def __init__(self, inputs: int = 512, branch: int = 128, outputs: int = 128):
        super().__init__()
        pools = [nn.AvgPool2d(k, s, k // 2) for k, s in ((5, 2), (9, 4), (17, 8))] + [nn.AdaptiveAvgPool2d(1)]
        self.scales = nn.ModuleList([bn_relu_conv(inputs, branch), *(nn.Sequential(pool, bn_relu_conv(inputs, branch))
                                                                    for pool in pools)])
        self.process = nn.ModuleList(bn_relu_conv(branch, branch, 3) for _ in pools)
        self.compression, self.shortcut = bn_relu_conv(5 * branch, outputs), bn_relu_conv(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = [self.scales[0](x)]
        for scale, process in zip(self.scales[1:], self.process):
            levels.append(process(bilinear(scale(x), x.shape[2:]) + levels[-1]))
        return self.compression(torch.cat(levels, 1)) + self.shortcut(x)


class DDRNet23Slim(nn.Module):
    """DDRNet-23-slim (chenjun2hao/DDRNet.pytorch, which qai-hub-models wraps): a ResNet branch down to 1/64 beside a
    high-resolution branch kept at 1/8, exchanging features twice, DAPPM, a 19-class head at 1/8."""

    def __init__(self, planes: int = 32, classes: int = 19):
        super().__init__()
        high = 2 * planes
        self.stem = nn.Sequential(conv_bn(3, planes, 3, 2), conv_bn(planes, planes, 3, 2), ddr_stage(planes, planes))
        self.layer2, self.layer3 = ddr_stage(planes, 2 * planes, 2), ddr_stage(2 * planes, 4 * planes, 2)
        self.layer4 = ddr_stage(4 * planes, 8 * planes, 2)
        self.layer3_, self.layer4_ = ddr_stage(2 * planes, high), ddr_stage(high, high)
        self.layer5_ = ResNetBlock(high, high, bottleneck=True, relu=False)
        self.layer5 = ResNetBlock(8 * planes, 8 * planes, 2, bottleneck=True, relu=False)
        self.compression3 = conv_bn(4 * planes, high, activation=nn.Identity)
        self.compression4 = conv_bn(8 * planes, high, activation=nn.Identity)
        self.down3 = conv_bn(high, 4 * planes, 3, 2, activation=nn.Identity)
        self.down4 = nn.Sequential(conv_bn(high, 4 * planes, 3, 2),
                                   conv_bn(4 * planes, 8 * planes, 3, 2, activation=nn.Identity))
        self.spp = DeepAggregationPyramid(16 * planes, 128, 4 * planes)
        self.head = nn.Sequential(bn_relu_conv(4 * planes, 64, 3), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.Conv2d(64, classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2] // 8, x.shape[3] // 8)
        layer1 = self.stem(x)
        layer2 = self.layer2(torch.relu(layer1))
        low = self.layer3(torch.relu(layer2))
        high = self.layer3_(torch.relu(layer2))
        low, high = low + self.down3(torch.relu(high)), high + bilinear(self.compression3(torch.relu(low)), size)
        low = self.layer4(torch.relu(low))
        high = self.layer4_(torch.relu(high))
        low, high = low + self.down4(torch.relu(high)), high + bilinear(self.compression4(torch.relu(low)), size)
        high = self.layer5_(torch.relu(high))
        low = bilinear(self.spp(self.layer5(torch.relu(low))), size)
        return self.head(low + high)


def nearest(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return nn.functional.interpolate(x, size=size, mode="nearest")


class FFNet40S(nn.Module):
    """FFNet-40S in its mobile form (Qualcomm-AI-research/FFNet, segmentation_ffnet40S_dBBB_mobile, which
    qai-hub-models wraps): a slim ResNet of 4/5/6/4 basic blocks down to 1/64, 1x1 adapters, an up-branch with
    nearest upsampling, its four scales concatenated at 1/8 and a 19-class 3x3 head."""

    def __init__(self, blocks: tuple[int, ...] = (4, 5, 6, 4), widths: tuple[int, ...] = (64, 128, 192, 320),
                 head: tuple[int, ...] = (64, 128, 128, 256), smoothed: tuple[int, ...] = (96, 96, 64, 32),
                 classes: int = 19):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 3, 2), conv_bn(32, 64, 3, 2))
        self.stages = nn.ModuleList(
            nn.Sequential(ResNetBlock(inputs, width, 2), *(ResNetBlock(width, width) for _ in range(count - 1)))
            for inputs, width, count in zip((64, *widths), widths, blocks))
        self.adapters = nn.ModuleList(conv_bn(width, channels) for width, channels in zip(widths, head))
        self.smooth = nn.ModuleList(conv_bn(channels, out, 3) for channels, out in zip(head, smoothed))
        self.up = nn.ModuleList(conv_bn(channels, finer) for channels, finer in zip(head[1:], head))
        self.head = nn.Sequential(nn.Conv2d(sum(smoothed), 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
                                  nn.Conv2d(256, classes, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        features = []
        for stage, adapter in zip(self.stages, self.adapters):
            x = stage(x)
            features.append(adapter(x))
        x = features[-1]
        smoothed = [self.smooth[-1](x)]
        for level in reversed(range(len(features) - 1)):
            x = nearest(self.up[level](x), features[level].shape[2:]) + features[level]
            smoothed.insert(0, self.smooth[level](x))
        size = smoothed[0].shape[2:]
        return self.head(torch.cat([smoothed[0], *(nearest(y, size) for y in smoothed[1:])], 1))


class AotBlock(nn.Module):
    """AOT-GAN's block: 3x3 convs at dilations 1/2/4/8 to a quarter of the width each, concatenated and fused, blended
    into the input by a gate normalised over the image (as AI Hub's patch computes it: mean reused, divided first)."""

    def __init__(self, width: int = 256, rates: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.ReflectionPad2d(rate), nn.Conv2d(width, width // 4, 3, dilation=rate), nn.ReLU())
            for rate in rates)
        self.fuse = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3))
        self.gate = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fuse(torch.cat([branch(x) for branch in self.branches], 1))
        gate = self.gate(x)
        centred = gate - gate.mean((2, 3), keepdim=True)
        std = (centred ** 2 / (gate.shape[2] * gate.shape[3] - 1)).sum((2, 3), keepdim=True).sqrt() + 1e-9
        mask = torch.sigmoid(5 * (2 * centred / std - 1))
        return x * (1 - mask) + out * mask


class AotGan(nn.Module):
    """AOT-GAN's inpainting generator (researchmm/AOT-GAN-for-Inpainting) with AI Hub's masking around it: two
    stride-2 convs to 256 channels, eight AOT blocks, two bilinear upsamplings with 3x3 convs."""

    def __init__(self, blocks: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(4, 64, 7), nn.ReLU(), nn.Conv2d(64, 128, 4, 2, 1),
                                     nn.ReLU(), nn.Conv2d(128, 256, 4, 2, 1), nn.ReLU())
        self.middle = nn.Sequential(*(AotBlock() for _ in range(blocks)))
        self.up = nn.ModuleList([nn.Conv2d(256, 128, 3, padding=1), nn.Conv2d(128, 64, 3, padding=1)])
        self.last = nn.Conv2d(64, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.middle(self.encoder(torch.cat([(image * 2 - 1) * (1 - mask) + mask, mask], 1)))
        for conv in self.up:
            x = torch.relu(conv(nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)))
        predicted = (torch.clamp(torch.tanh(self.last(x)), -1, 1) + 1) / 2
        return predicted * mask + image * (1 - mask)


class MultidilatedConv(nn.Module):
    """LaMa's multi-dilated 3x3 conv ("cat_in"): each quarter of the input channels through its own conv at
    dilation 1/2/4/8 (reflect-padded), the four summed."""

    def __init__(self, width: int, dilations: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(width // len(dilations), width, 3, padding=d, dilation=d,
                                             padding_mode="reflect") for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functools.reduce(torch.add, (conv(part) for conv, part in zip(self.convs, x.chunk(len(self.convs), 1))))


class LamaDilated(nn.Module):
    """LaMa-Dilated (advimman/lama, pix2pixhd_multidilated_catin_4dil_9b) with AI Hub's masking around it: a 7x7
    stem, three stride-2 convs to 512 channels, nine residual blocks of two multi-dilated convs, three transposed
    convs back, a 7x7 conv and a sigmoid."""

    def __init__(self, width: int = 64, blocks: int = 9):
        super().__init__()
        widths = [width * 2 ** i for i in range(4)]
        bn_relu = lambda channels: [nn.BatchNorm2d(channels), nn.ReLU()]  # noqa: E731
        layers = [nn.ReflectionPad2d((7, 13, 7, 13)), nn.Conv2d(4, width, 7), *bn_relu(width)]
        for inputs, outputs in zip(widths, widths[1:]):
            layers += [nn.Conv2d(inputs, outputs, 3, 2, 1), *bn_relu(outputs)]
        deepest = widths[-1]
        layers += [Residual(MultidilatedConv(deepest), *bn_relu(deepest), MultidilatedConv(deepest),
                            nn.BatchNorm2d(deepest)) for _ in range(blocks)]
        for inputs, outputs in zip(widths[:0:-1], widths[-2::-1]):
            layers += [nn.ConvTranspose2d(inputs, outputs, 3, 2, 1, output_padding=1), *bn_relu(outputs)]
        layers += [nn.ReplicationPad2d((0, 6, 0, 6)), nn.Conv2d(width, 3, 7), nn.Sigmoid()]
        self.generator = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        predicted = self.generator(torch.cat([image * (1 - mask), mask], 1))[:, :, 8:-8, 8:-8]
        return mask * predicted + (1 - mask) * image


def inpainting_inputs(size: int) -> list[torch.Tensor]:
    """An RGB image and a binary mask of its size."""
    return [torch.rand(1, 3, size, size), torch.randint(0, 2, (1, 1, size, size)).float()]


def residual_conv_unit(width: int) -> Residual:
    """MiDaS's residual unit: ReLU, 3x3 conv, ReLU, 3x3 conv, plus the input."""
    return Residual(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))


class FeatureFusion(nn.Module):
    """MiDaS's fusion block: the coarser path plus a residual unit of the skip, another unit, 2x bilinear, 1x1."""

    def __init__(self, width: int, outputs: int, skip: bool):
        super().__init__()
        self.skip = residual_conv_unit(width) if skip else None
        self.unit, self.out = residual_conv_unit(width), nn.Conv2d(width, outputs, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip is not None:
            x = x + self.skip(skip)
        upsampled = nn.functional.interpolate(self.unit(x), scale_factor=2, mode="bilinear", align_corners=True)
        return self.out(upsampled)


class MidasSmall(nn.Module):
    """MiDaS v2.1 small (isl-org/MiDaS, MidasNet_small): EfficientNet-Lite3 read at strides 4/8/16/32, each level
    reduced to 64/128/256/512 channels, fused coarse to fine, a depth head at full resolution."""

    def __init__(self, features: int = 64):
        super().__init__()
        import timm

        net = timm.create_model("tf_efficientnet_lite3", pretrained=False)
        self.levels = nn.ModuleList([nn.Sequential(net.conv_stem, net.bn1, *net.blocks[0:2]), net.blocks[2],
                                     nn.Sequential(*net.blocks[3:5]), nn.Sequential(*net.blocks[5:7])])
        widths = [features * 2 ** i for i in range(4)]
        self.reduce = nn.ModuleList(nn.Conv2d(channels, width, 3, padding=1, bias=False)
                                    for channels, width in zip((32, 48, 136, 384), widths))
        self.fuse = nn.ModuleList(FeatureFusion(width, max(width // 2, features), skip=width != widths[-1])
                                  for width in widths)
        self.head = nn.Sequential(nn.Conv2d(features, features // 2, 3, padding=1),
                                  nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(features // 2, 32, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = []
        for level, reduce in zip(self.levels, self.reduce):
            x = level(x)
            reduced.append(reduce(x))
        path = self.fuse[-1](reduced[-1])
        for fuse, skip in zip(self.fuse[-2::-1], reduced[-2::-1]):
            path = fuse(path, skip)
        return self.head(path)


def double_conv(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(conv_bn(inputs, outputs, 3), conv_bn(outputs, outputs, 3))


class SegmentationUNet(nn.Module):
    """The original U-Net as in milesial/Pytorch-UNet (31M parameters, transposed-conv upsampling)."""

    def __init__(self, classes: int = 2, widths: tuple[int, ...] = (64, 128, 256, 512, 1024)):
        super().__init__()
        self.first = double_conv(3, widths[0])
        self.down = nn.ModuleList(double_conv(a, b) for a, b in zip(widths, widths[1:]))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:]))
        self.up = nn.ModuleList(double_conv(2 * a, a) for a in widths[:-1])
        self.out = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.first(x)]
        for block in self.down:
            skips.append(block(nn.functional.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for upsample, block in zip(reversed(self.upsample), reversed(self.up)):
            x = block(torch.cat([skips.pop(), upsample(x)], 1))
        return self.out(x)


def stable_diffusion(component: str, version: str) -> Callable[[], Built]:
    """SD-1.5's or SD-2.1's components at 512x512 (latent 64x64), from their published configurations."""
    def build() -> Built:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        from edgefusion_export.sources.presets import CLIP_VIT_L14_TEXT, SD_V15_UNET, SD_VAE

        text_width = 768 if version == "1.5" else 1024
        if component == "text_encoder":
            config = CLIP_VIT_L14_TEXT if version == "1.5" else {
                **CLIP_VIT_L14_TEXT, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
                "num_attention_heads": 16, "hidden_act": "gelu", "projection_dim": 1024}
            model = CLIPTextModel(CLIPTextConfig(**config, attn_implementation="eager"))
            return OutputKey(model, 0), [torch.randint(0, 49408, (1, 77), dtype=torch.int32)]
        if component == "vae":
            return VaeDecoder(AutoencoderKL(**SD_VAE)), [torch.randn(1, 4, 64, 64)]
        unet_config = {key: value for key, value in SD_V15_UNET.items() if key not in ("time_cond_proj_dim",)}
        if version == "2.1":
            unet_config |= {"attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
                            "use_linear_projection": True}
        unet = UNet2DConditionModel(**unet_config)
        return (OutputKey(UnetCall(unet), 0),
                [torch.randn(1, 4, 64, 64), torch.tensor([999.0]), torch.randn(1, 77, text_width)])
    return build


class VaeDecoder(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent).sample


class UnetCall(nn.Module):
    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.unet(latent, timestep, encoder_hidden_states=text).sample,)


class LinearAsConv(nn.Module):
    """A Linear layer run as a 1x1 Conv over [B, D, 1, L], as qai-hub-models patches SAM's mask decoder for QNN."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(1, 1, -1, x.shape[-1]).permute(0, 3, 1, 2)
        return self.conv(rows).permute(0, 2, 3, 1).reshape(*x.shape[:-1], -1)


class ConvMLP(nn.Module):
    """SAM's MLPs (the transformer's and the mask decoder's heads) with each Linear as a 1x1 Conv."""

    def __init__(self, linears: list[nn.Linear], activation: nn.Module, sigmoid: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(LinearAsConv(linear.in_features, linear.out_features) for linear in linears)
        self.activation, self.sigmoid = activation, sigmoid

    @classmethod
    def of(cls, mlp: nn.Module) -> ConvMLP:
        """The MLP `mlp` (ultralytics' MLPBlock or MLP: Linear layers, `act` between them, maybe a sigmoid)."""
        linears = [module for module in mlp.modules() if isinstance(module, nn.Linear)]
        return cls(linears, mlp.act, getattr(mlp, "sigmoid", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.layers[-1](x)
        return torch.sigmoid(x) if self.sigmoid else x


class SplitHeadAttention(nn.Module):
    """SAM's decoder attention with a query, key and value projection per head (qai-hub-models' QNN patch)."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.width = attention.internal_dim // attention.num_heads
        self.heads = nn.ModuleList(
            nn.ModuleList(LinearAsConv(inputs, self.width) for inputs in
                          (attention.embedding_dim, attention.kv_in_dim, attention.kv_in_dim))
            for _ in range(attention.num_heads))
        self.out_proj = attention.out_proj

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        heads = [torch.softmax(query(q) @ key(k).transpose(-2, -1) / self.width ** 0.5, dim=-1) @ value(v)
                 for query, key, value in self.heads]
        return self.out_proj(torch.cat(heads, -1))


def mobile_sam() -> nn.Module:
    from ultralytics.models.sam.build import build_mobile_sam

    return build_mobile_sam()


class SamEncoder(nn.Module):
    """SAM's pixel normalisation of an image in [0, 1], then its image encoder (qai-hub-models' MobileSAMEncoder)."""

    def __init__(self, sam: nn.Module):
        super().__init__()
        self.encoder = sam.image_encoder
        self.register_buffer("mean", sam.pixel_mean / 255)
        self.register_buffer("std", sam.pixel_std / 255)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder((image - self.mean) / self.std)


def patch_mask_decoder(decoder: nn.Module) -> None:
    """qai-hub-models' QNN patches of SAM's and SAM2's mask decoders: attention split per head, Linear layers as
    1x1 Convs."""
    transformer = decoder.transformer
    transformer.final_attn_token_to_image = SplitHeadAttention(transformer.final_attn_token_to_image)
    for block in transformer.layers:
        for name in ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token"):
            setattr(block, name, SplitHeadAttention(getattr(block, name)))
        block.mlp = ConvMLP.of(block.mlp)
    decoder.output_hypernetworks_mlps = nn.ModuleList(map(ConvMLP.of, decoder.output_hypernetworks_mlps))
    decoder.iou_prediction_head = ConvMLP.of(decoder.iou_prediction_head)


def decode_masks(decoder: nn.Module, lead: list[torch.Tensor], sparse: torch.Tensor, embeddings: torch.Tensor,
                 image_pe: torch.Tensor, upscale: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """SAM's mask decoder after its prompt embeddings: the two-way transformer over the output tokens (`lead`, the
    tokens before the IoU token, then the IoU and mask tokens) and the prompt's, the upscaled image tokens (`upscale`)
    times each mask token's hypernetwork, and the first mask with its score (single-mask mode)."""
    first = len(lead)
    tokens = torch.cat([*lead, decoder.iou_token.weight, decoder.mask_tokens.weight]).unsqueeze(0)
    tokens, image_tokens = decoder.transformer(embeddings, image_pe, torch.cat([tokens, sparse], 1))
    upscaled = upscale(image_tokens.transpose(1, 2).reshape(embeddings.shape))
    hypernetworks = decoder.output_hypernetworks_mlps
    hyper = torch.stack([mlp(tokens[:, first + 1 + i]) for i, mlp in enumerate(hypernetworks)], 1)
    masks = (hyper @ upscaled.flatten(2)).reshape(1, -1, *upscaled.shape[2:])
    return masks[:, :1], decoder.iou_prediction_head(tokens[:, first])[:, :1]


class SamDecoder(nn.Module):
    """SAM's prompt encoder on points and its mask decoder, one mask out, as qai-hub-models' MobileSAMDecoder runs
    them: image embeddings [1, 256, 64, 64], two points and their labels -> a 256x256 mask and its score; its QNN
    patches, no mask input."""

    def __init__(self, sam: nn.Module):
        super().__init__()
        self.prompt, self.decoder = sam.prompt_encoder, sam.mask_decoder
        patch_mask_decoder(self.decoder)

    def forward(self, embeddings: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        prompt = self.prompt
        labels = labels.unsqueeze(-1)
        points = prompt.pe_layer._pe_encoding((coords + 0.5) / prompt.input_image_size[0])  # SAM's ONNX export's way
        sparse = points * (labels != -1) + prompt.not_a_point_embed.weight * (labels == -1)
        for label, embedding in enumerate(prompt.point_embeddings):
            sparse = sparse + embedding.weight * (labels == label)
        dense = prompt.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, *prompt.image_embedding_size)
        return decode_masks(self.decoder, [], sparse, embeddings + dense, prompt.get_dense_pe(),
                            self.decoder.output_upscaling)


class SplitQkvAttention(nn.Module):
    """SAM2's Hiera attention with its fused qkv projection as three 1x1 Convs (qai-hub-models' QNN patch)."""

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.q, self.k, self.v = (LinearAsConv(attention.dim, attention.dim_out) for _ in range(3))
        self.proj = LinearAsConv(attention.dim_out, attention.dim_out)
        self.heads, self.q_pool = attention.num_heads, attention.q_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def by_head(values: torch.Tensor) -> torch.Tensor:  # [B, H, W, C] -> [B, heads, H * W, C / heads]
            return values.reshape(len(x), -1, self.heads, values.shape[-1] // self.heads).transpose(1, 2)

        query = self.q(x)
        if self.q_pool is not None:
            query = self.q_pool(query.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        out = nn.functional.scaled_dot_product_attention(by_head(query), by_head(self.k(x)), by_head(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(*query.shape[:3], -1))


def sam2_tiny() -> nn.Module:
    from ultralytics.models.sam.build import build_sam2_t

    return build_sam2_t()


class Sam2Encoder(nn.Module):
    """SAM2's image encoder (Hiera-T and its FPN) with the mask decoder's high-resolution projections and the
    no-memory embedding, and its prompt encoder on two points, as qai-hub-models' SAM2Encoder: an image in [0, 1] at
    1024x1024 and two points -> image embeddings [1, 256, 64, 64], high-resolution features [1, 32, 256, 256] and
    [1, 64, 128, 128], and the points' embeddings; its QNN patches."""

    def __init__(self, sam: nn.Module):
        super().__init__()
        for block in sam.image_encoder.trunk.blocks:
            block.attn, block.mlp = SplitQkvAttention(block.attn), ConvMLP.of(block.mlp)
        self.sam = sam
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(-1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(-1, 1, 1))

    def forward(self, image: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sam, prompt = self.sam, self.sam.sam_prompt_encoder
        high_res_0, high_res_1, embeddings = sam.forward_image((image - self.mean) / self.std)["backbone_fpn"][-3:]
        embeddings = embeddings + sam.no_mem_embed.reshape(1, -1, 1, 1)
        points = torch.cat([coords * 2 - 1 + 1 / prompt.input_image_size[0], torch.zeros(1, 1, 2)], 1)
        labels = torch.cat([labels, -torch.ones(1, 1)], 1).unsqueeze(-1)
        points = 2 * torch.pi * points @ prompt.pe_layer.positional_encoding_gaussian_matrix
        points = torch.cat([points.sin(), points.cos()], -1)
        sparse = (points + prompt.point_embeddings[1].weight) * (labels != -1)
        return embeddings, high_res_0, high_res_1, sparse + prompt.not_a_point_embed.weight * (labels == -1)


class Sam2Decoder(nn.Module):
    """SAM2's mask decoder, one mask out, as qai-hub-models' SAM2Decoder: image embeddings, the two high-resolution
    feature maps and three point embeddings -> a 256x256 mask and its score; its QNN patches (the upscaling's
    LayerNorm left out, as there), no mask input."""

    def __init__(self, sam: nn.Module):
        super().__init__()
        self.prompt, self.decoder = sam.sam_prompt_encoder, sam.sam_mask_decoder
        patch_mask_decoder(self.decoder)

    def forward(self, embeddings: torch.Tensor, high_res_0: torch.Tensor, high_res_1: torch.Tensor,
                sparse: torch.Tensor) -> tuple[torch.Tensor, ...]:
        decoder = self.decoder
        first, _, first_activation, second, second_activation = decoder.output_upscaling

        def upscale(image_tokens: torch.Tensor) -> torch.Tensor:
            return second_activation(second(first_activation(first(image_tokens) + high_res_1)) + high_res_0)

        dense = self.prompt.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return decode_masks(decoder, [decoder.obj_score_token.weight], sparse, embeddings + dense,
                            self.prompt.get_dense_pe(), upscale)


def sam_decoder_inputs() -> list[torch.Tensor]:
    """Image embeddings [1, 256, 64, 64], two points in SAM's 1024x1024 frame and their labels."""
    return [torch.randn(1, 256, 64, 64), torch.rand(1, 2, 2) * 1024, torch.tensor([[1.0, 0.0]])]


def sam2_encoder_inputs() -> list[torch.Tensor]:
    """An image in [0, 1] at 1024x1024, two points in [0, 1] and their labels."""
    return [torch.rand(1, 3, 1024, 1024), torch.rand(1, 2, 2), torch.tensor([[1.0, 0.0]])]


def sam2_decoder_inputs() -> list[torch.Tensor]:
    """Image embeddings [1, 256, 64, 64], high-resolution features [1, 32, 256, 256] and [1, 64, 128, 128], and
    three point embeddings (two points and the padding one)."""
    return [torch.randn(1, 256, 64, 64), torch.randn(1, 32, 256, 256), torch.randn(1, 64, 128, 128),
            torch.randn(1, 3, 256)]


ARCHITECTURES = [
    Architecture("resnet18", "ResNet18", "cnn", torchvision_model("resnet18", 224)),
    Architecture("resnet50", "ResNet50", "cnn", torchvision_model("resnet50", 224)),
    Architecture("inception_v3", "Inception-v3", "cnn",
                 torchvision_model("inception_v3", 224, aux_logits=False, init_weights=False)),
    Architecture("convnext_tiny", "ConvNext-Tiny", "cnn", torchvision_model("convnext_tiny", 224)),
    Architecture("mobilenet_v2", "MobileNet-v2", "depthwise", torchvision_model("mobilenet_v2", 224)),
    Architecture("mobilenet_v3_large", "MobileNet-v3-Large", "depthwise", torchvision_model("mobilenet_v3_large", 224)),
    Architecture("efficientnet_b0", "EfficientNet-B0", "depthwise", torchvision_model("efficientnet_b0", 224)),
    Architecture("efficientnet_b4", "EfficientNet-B4", "depthwise", torchvision_model("efficientnet_b4", 380)),
    Architecture("vit", "VIT", "transformer", torchvision_model("vit_b_16", 224)),
    Architecture("efficientvit_b2_cls", "EfficientViT-b2-cls", "transformer", timm_model("efficientvit_b2", 224)),
    Architecture("bert_base_uncased_hf", "Bert-Base-Uncased-Hf", "transformer", bert_base),
    Architecture("whisper_tiny", "HfWhisperEncoder", "transformer", whisper_encoder(384, 4, 6)),
    Architecture("whisper_base", "HfWhisperEncoder", "transformer", whisper_encoder(512, 6, 8)),
    Architecture("segformer_base", "Segformer-Base", "segmentation", segformer_b0),
    Architecture("fcn_resnet50", "FCN-ResNet50", "segmentation", fcn_resnet50),
    Architecture("deeplabv3_plus_mobilenet", "DeepLabV3-Plus-MobileNet", "segmentation",
                 lambda: (DeepLabV3Plus(), image(513))),
    Architecture("unet_segmentation", "Unet-Segmentation", "segmentation", lambda: (SegmentationUNet(), image(640, 1280))),
    Architecture("ddrnet23_slim", "DDRNet23-Slim", "segmentation", lambda: (DDRNet23Slim(), image(1024, 2048))),
    Architecture("ffnet_40s", "FFNet-40S", "segmentation", lambda: (FFNet40S(), image(1024, 2048))),
    Architecture("midas", "Midas-V2", "depth", lambda: (MidasSmall(), image(256))),
    Architecture("aotgan", "AOT-GAN", "inpainting", lambda: (AotGan(), inpainting_inputs(512))),
    Architecture("lama_dilated", "LaMa-Dilated", "inpainting", lambda: (LamaDilated(), inpainting_inputs(512))),
    Architecture("mobilesam", "MobileSAMEncoder", "segment-anything",
                 lambda: (SamEncoder(mobile_sam()), [torch.rand(1, 3, 1024, 1024)])),
    Architecture("mobilesam", "MobileSAMDecoder", "segment-anything",
                 lambda: (SamDecoder(mobile_sam()), sam_decoder_inputs())),
    Architecture("sam2", "SAM2Encoder", "segment-anything", lambda: (Sam2Encoder(sam2_tiny()), sam2_encoder_inputs())),
    Architecture("sam2", "SAM2Decoder", "segment-anything", lambda: (Sam2Decoder(sam2_tiny()), sam2_decoder_inputs())),
    Architecture("yolov8_det", "YOLOv8-Detection", "detector", yolo("yolov8n.yaml")),
    Architecture("yolov11_det", "YOLOv11-Detection", "detector", yolo("yolo11n.yaml")),
    Architecture("yolov7", "Yolo-v7", "detector", lambda: (YoloV7Tiny(), image(640))),
    Architecture("real_esrgan_general_x4v3", "Real-ESRGAN-General-x4v3", "super-resolution",
                 lambda: (SRVGGNetCompact(), image(128))),
    Architecture("real_esrgan_x4plus", "Real-ESRGAN-x4plus", "super-resolution", lambda: (RRDBNet(), image(128))),
    Architecture("esrgan", "ESRGAN", "super-resolution", lambda: (RRDBNet(), image(128)),
                 graph="real_esrgan_x4plus.Real-ESRGAN-x4plus"),
    Architecture("quicksrnetlarge", "QuickSRNetLarge", "super-resolution", lambda: (QuickSRNetLarge(), image(128))),
    Architecture("xlsr", "XLSR", "super-resolution", lambda: (XLSR(), image(128))),
    *(Architecture(model, name, "stable-diffusion", stable_diffusion(component, "1.5"), graph=f"sd-1.5.{component}")
      for component, names in (("text_encoder", ("text_encoder", "TextEncoder_Quantized")),
                               ("unet", ("unet", "UNet_Quantized")), ("vae", ("vae", "VAEDecoder_Quantized")))
      for model, name in (("stable_diffusion_v1_5", names[0]), ("controlnet_canny", names[0]), ("riffusion", names[1]))),
    *(Architecture("stable_diffusion_v2_1", component, "stable-diffusion", stable_diffusion(component, "2.1"))
      for component in ("text_encoder", "unet", "vae")),
]

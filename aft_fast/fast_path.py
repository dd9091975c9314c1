"""The fast path a run takes on the hardware at hand: `--amp auto` and `--channels-last auto`
resolved for one device and one model, and the fp32 channels_last layout evaluation attacks use.

The rule (README "Precision and memory format"):
- mixed precision where the device computes the dtype natively, read from the device, never
  guessed from its vendor: bf16 on CUDA capability >= 8.0 and on CPUs with AVX-512 BF16 or AMX;
  fp16 + GradScaler on CUDA 7.x (Volta/Turing tensor cores, the usual practice there); fp32 on
  anything else (a CPU without native bf16 emulates it, slower than fp32);
- channels_last for networks with 2-D convolutions (oneDNN and cuDNN's fast layouts), the
  default layout otherwise;
- evaluation attacks stay fp32 (AutoAttack's reference setting) with the model in
  channels_last and the images NCHW: the same random starts and results as an NCHW model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from aft_fast.policy import amp_name

AUTO = "auto"
AMP_SETTINGS = (AUTO, "none", "bf16", "fp16")  # what --amp takes ("none" = fp32)
CHANNELS_LAST_SETTINGS = (AUTO, "on", "off")  # what --channels-last takes
AMP_HELP = ("Mixed precision of the attack steps and weight updates: auto (bf16 where the device "
            "computes it natively: CUDA capability >= 8.0, CPUs with AVX-512 BF16 or AMX; fp16 + "
            "GradScaler on CUDA 7.x; fp32 elsewhere), none (fp32), bf16 or fp16.")
CHANNELS_LAST_HELP = ("Model and inputs in channels_last memory format: auto (on for networks "
                      "with 2-D convolutions), on (also the bare flag) or off.")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
NOT_RECORDED = "not recorded"  # a run from before a comparison row recorded it


def channels_last_setting(value) -> str:
    """--channels-last as auto/on/off; True/False (the former flag, an old args.yaml) as on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): torch's own cpuinfo query
    where it has one, else the kernel's flags."""
    probes = [getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [p for p in probes if p is not None]
    if probes:
        return any(p() for p in probes)
    return bool(_cpuinfo_flags() & set(CPU_BF16_FLAGS))


def auto_amp(device: torch.device | str) -> tuple[str, str]:
    """(amp setting, why) for `device`: "bf16", "fp16" or "none"."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major >= 8:
            return "bf16", f"CUDA capability {major}.{minor} computes bf16 natively"
        if major >= 7:
            return "fp16", f"CUDA capability {major}.{minor}: fp16 tensor cores, GradScaler"
        return "none", f"CUDA capability {major}.{minor} has no fast half precision"
    if device.type == "cpu":
        if cpu_native_bf16():
            return "bf16", "the CPU has native bf16 (AVX-512 BF16 or AMX)"
        return "none", "the CPU has no native bf16 (neither AVX-512 BF16 nor AMX)"
    return "none", f"no automatic mixed precision on {device.type}"


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass(frozen=True)
class FastPath:
    """What a run resolved: `amp` as the library takes it (None = fp32) and the memory format."""
    amp: str | None
    channels_last: bool
    why: str = ""

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def precision(self) -> str:
        return self.amp or "fp32"

    def layout(self) -> str:
        return "channels_last" if self.channels_last else "contiguous"

    def short(self) -> str:
        return f"{self.precision()}, {self.layout()}"

    def describe(self) -> str:
        return f"precision {self.precision()}, memory format {self.layout()}" + \
            (f" ({self.why})" if self.why else "")

    def record(self) -> dict:
        """What args.yaml's `resolved` section and a comparison row keep."""
        return {"amp": self.precision(), "channels_last": self.channels_last,
                "fast_path": self.describe()}


def resolve(amp: str, channels_last, device: torch.device | str, model: nn.Module) -> FastPath:
    """The settings a run trains under: `auto` decided for `device` and `model`, explicit
    settings kept as given."""
    why = []
    if amp == AUTO:
        amp, reason = auto_amp(device)
        why.append(f"amp auto: {reason}")
    layout = channels_last_setting(channels_last)
    if layout == AUTO:
        conv = is_convolutional(model)
        layout = "on" if conv else "off"
        why.append("channels_last auto: " + ("convolutional" if conv else "no 2-D convolution"))
    return FastPath(amp_name(amp), layout == "on", "; ".join(why))


def for_evaluation(model: nn.Module) -> nn.Module:
    """`model` (in place) in the layout evaluation attacks run in: fp32 kept, channels_last for
    convolutional networks. The images stay NCHW: an attack's random start is drawn in the
    images' memory order, so NCHW images keep the starts, and the results, of an NCHW model
    (convolutions convert their input)."""
    if is_convolutional(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def recorded_fast_path(args: dict) -> str:
    """What a run's args.yaml says it trained under ("bf16, channels_last"): its resolved choice,
    or for runs from before the choice was automatic, the options it was given."""
    resolved = args.get("resolved", {})
    if "amp" in resolved:
        amp, last = resolved["amp"], resolved["channels_last"]
    else:
        amp, last = args.get("amp"), channels_last_setting(args.get("channels_last")) == "on"
    return FastPath(amp_name(amp), last).short()


def trained_in(run_dir) -> str:
    """What the training run in `run_dir` trained under, from its args.yaml."""
    from pathlib import Path

    import yaml

    try:
        args = yaml.safe_load((Path(run_dir) / "args.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return NOT_RECORDED
    return recorded_fast_path(args)

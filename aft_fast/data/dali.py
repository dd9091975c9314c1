"""NVIDIA DALI pipelines, built the way DALI's PyTorch ResNet-50 example builds them.

`fn.readers.file` (the file list of this rank's epoch, unshuffled) → decode ("mixed" = nvJPEG on
a GPU; on the CPU with `device_id=None`) → the augmentation preset of augment.py →
`crop_mirror_normalize` to float CHW in [0, 1] (mean 0, std 255: normalisation stays in the
model). Labels are the folder's labels, passed in explicitly with the file list.

DALI is optional (`pip install 'aft_fast[dali]'`); importing aft_fast never imports it.

Order and shards: the reader does NOT shuffle (`random_shuffle` only shuffles inside a buffer of
`initial_fill` = 1,024 samples, so a class-sorted ImageNet list gives near single-class batches),
and DALI's own shards can differ in size by one sample (ranks would run different numbers of
steps and DDP would hang). Instead the reader is handed exactly this rank's index list of the
epoch from `Batches.indices()` (the order DistributedSampler gives; see batches.py), so rank r
reads the samples the torchvision loader's rank r reads, in the same order, and an epoch is a
pure function of (seed, epoch). The train pipeline is rebuilt when the epoch (or the resume
offset) changes, its augmentation seeded from seed, epoch and rank: milliseconds on CPU, roughly
1.5 s with nvJPEG on an H100 (inferred from DALI at 0.81x torchvision on 3,500 images an epoch,
3.35x on 28,000), nothing at ImageNet's 1.28 M images. The last partial batch is kept.
"""
from __future__ import annotations

import torch

from aft_fast.data.augment import CROP_RATIO, PAD
from aft_fast.data.batches import Batches
from aft_fast.data.types import FileList
from aft_fast.errors import OptionError

INSTALL_HINT = ("the dali loader needs NVIDIA DALI: pip install 'aft_fast[dali]' "
                "(package nvidia-dali-cuda130), or use the pytorch loader")


def _dali():
    try:
        import nvidia.dali.fn as fn
        import nvidia.dali.types as types
        from nvidia.dali import pipeline_def
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return fn, types, pipeline_def, DALIGenericIterator, LastBatchPolicy


def _augmented(fn, types, jpegs, *, preset: str, train: bool, image_size: int, gpu: bool):
    """Decoded, augmented HWC uint8 images and the flip flag, per augment.py's preset."""
    decode_device = "mixed" if gpu else "cpu"
    if preset == "imagenet" and train:
        if gpu:  # nvJPEG decodes only the crop window
            images = fn.decoders.image_random_crop(jpegs, device=decode_device,
                                                   output_type=types.RGB)
            images = fn.resize(images, resize_x=image_size, resize_y=image_size)
        else:
            images = fn.decoders.image(jpegs, device=decode_device, output_type=types.RGB)
            images = fn.random_resized_crop(images, size=[image_size, image_size])
        return images, fn.random.coin_flip()
    images = fn.decoders.image(jpegs, device=decode_device, output_type=types.RGB)
    shorter = int(image_size / CROP_RATIO) if preset == "imagenet" else image_size
    images = fn.resize(images, resize_shorter=shorter)
    images = fn.crop(images, crop=(image_size, image_size))  # centre crop
    if preset == "small" and train:  # zero-pad by PAD, random size×size window
        start = fn.random.uniform(values=list(range(-PAD, PAD + 1)), shape=[2])
        images = fn.slice(images, start, [float(image_size)] * 2, axis_names="HW",
                          normalized_anchor=False, normalized_shape=False,
                          out_of_bounds_policy="pad", fill_values=0)
        return images, fn.random.coin_flip()
    return images, 0


def build_pipeline(files: FileList, batch_size: int, *, train: bool, preset: str,
                   image_size: int, gpu: bool, device_id, threads: int, seed: int):
    fn, types, pipeline_def, _, _ = _dali()

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=seed)
    def pipe():
        jpegs, labels = fn.readers.file(files=files.files, labels=files.labels,
                                        random_shuffle=False, name="Reader")
        images, mirror = _augmented(fn, types, jpegs, preset=preset, train=train,
                                    image_size=image_size, gpu=gpu)
        images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                          mean=[0.0] * 3, std=[255.0] * 3, mirror=mirror)
        return images, labels

    return pipe()


class DaliBatches(Batches):
    """A DALI pipeline behind the loader contract (see the module docstring for order/shards)."""

    def __init__(self, files: FileList, batch_size: int, *, train: bool, augment: str,
                 image_size: int, device, workers: int, seed: int, channels_last: bool,
                 rank: int, world_size: int):
        _dali()  # fail now, naming the extra, if DALI is missing
        super().__init__(len(files.files), batch_size, shuffle=train, seed=seed, device=device,
                         channels_last=channels_last, rank=rank, world_size=world_size)
        self.files, self.train, self.augment, self.image_size = files, train, augment, image_size
        self.threads = max(workers, 1)  # DALI threads = DataLoader workers: same CPU budget
        self._built_for = None  # (epoch, samples left) of the order the current pipeline reads
        self._build(self.indices())  # build now: a bad pipeline fails at construction

    def ask_origin(self) -> None:
        raise OptionError("loader", "DALI does not say where its random crops and flips put "
                          "each image, which a perturbation kept per training image must "
                          "follow: pass --loader pytorch")

    def epoch_files(self) -> FileList:
        """This rank's files of the current epoch, in reading order."""
        return self.files.pick(self.indices().tolist())

    def _build(self, order: torch.Tensor) -> None:
        _, _, _, DALIGenericIterator, LastBatchPolicy = _dali()
        key = (self.epoch if self.train else 0, len(order))  # eval order never changes
        if self._built_for == key:
            return
        self.iterator = self.pipe = None  # free the old pipeline's threads and buffers first
        gpu = self.device.type == "cuda"
        aug_seed = (self.seed * 1_000_003 + key[0] * 1_009 + self.rank) % 2**31
        self.pipe = build_pipeline(self.files.pick(order.tolist()), self.batch_size,
                                   train=self.train, preset=self.augment,
                                   image_size=self.image_size, gpu=gpu,
                                   device_id=(self.device.index or 0) if gpu else None,
                                   threads=self.threads, seed=aug_seed)
        self.pipe.build()
        self.iterator = DALIGenericIterator(self.pipe, ["images", "labels"], reader_name="Reader",
                                            last_batch_policy=LastBatchPolicy.PARTIAL,
                                            auto_reset=not self.train)
        self._built_for = key

    def _batches(self, order: torch.Tensor):
        self._build(order)
        finished = False
        try:
            for batch in self.iterator:
                yield batch[0]["images"], batch[0]["labels"].view(-1)
            finished = True
        except RuntimeError as exc:
            raise RuntimeError(f"DALI pipeline failed: {str(exc).splitlines()[0]} ... Find every "
                               "unreadable file with `aft-fast data scan <folder>`") from exc
        finally:
            # DALI cannot rewind a half-read epoch (e.g. evaluation on the first k batches) and a
            # train order is used once: the next pass starts from a fresh pipeline.
            if self.train or not finished:
                self._built_for = None

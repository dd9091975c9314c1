"""NVIDIA DALI pipelines, built the way DALI's PyTorch ResNet-50 example builds them.

train: `fn.readers.file` (shuffled, sharded, `pad_last_batch=True` so every epoch splits the files
exactly across shards) → decode ("mixed" = nvJPEG on a GPU; on the CPU with `device_id=None`) with
a random-resized crop → `crop_mirror_normalize` with a random flip, to float CHW in [0, 1]
(mean 0, std 255: normalisation stays in the model). val: resize the shorter side to size/0.875,
centre crop. Labels are the ImageFolder indices, passed in explicitly with the file list.

DALI is optional (`pip install 'aft_fast[dali]'`); importing aft_fast never imports it.
The DALI reader shuffles with its own generator: epochs are random but not a function of
`set_epoch`, so a DALI run resumes at the right epoch but not with identical batches.
"""
from __future__ import annotations

import math

import torch

from aft_fast.data.folder import CROP_RATIO, FileList

INSTALL_HINT = ("--loader dali needs NVIDIA DALI: pip install 'aft_fast[dali]' "
                "(package nvidia-dali-cuda130), or use --loader pytorch")


def _dali():
    try:
        import nvidia.dali.fn as fn
        import nvidia.dali.types as types
        from nvidia.dali import pipeline_def
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return fn, types, pipeline_def, DALIGenericIterator, LastBatchPolicy


def build_pipeline(files: FileList, batch_size: int, *, train: bool, image_size: int, gpu: bool,
                   device_id, threads: int, seed: int, shard_id: int, num_shards: int):
    fn, types, pipeline_def, _, _ = _dali()

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=seed)
    def pipe():
        jpegs, labels = fn.readers.file(files=files.files, labels=files.labels,
                                        random_shuffle=train, shard_id=shard_id,
                                        num_shards=num_shards, pad_last_batch=True, name="Reader")
        decode_device = "mixed" if gpu else "cpu"
        if train:
            if gpu:  # nvJPEG decodes only the crop window
                images = fn.decoders.image_random_crop(jpegs, device=decode_device,
                                                       output_type=types.RGB)
                images = fn.resize(images, resize_x=image_size, resize_y=image_size)
            else:
                images = fn.decoders.image(jpegs, device=decode_device, output_type=types.RGB)
                images = fn.random_resized_crop(images, size=[image_size, image_size])
            mirror = fn.random.coin_flip()
        else:
            images = fn.decoders.image(jpegs, device=decode_device, output_type=types.RGB)
            images = fn.resize(images, resize_shorter=int(image_size / CROP_RATIO))
            mirror = 0
        images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                          crop=(image_size, image_size), mean=[0.0] * 3,
                                          std=[255.0] * 3, mirror=mirror)
        return images, labels

    return pipe()


class DaliBatches:
    """A DALI pipeline behind the loader contract. The last partial batch is kept (PARTIAL)."""

    def __init__(self, files: FileList, batch_size: int, *, train: bool, image_size: int, device,
                 workers: int, seed: int, channels_last: bool, rank: int, world_size: int):
        _, _, _, DALIGenericIterator, LastBatchPolicy = _dali()
        self.device = torch.device(device)
        gpu = self.device.type == "cuda"
        self.pipe = build_pipeline(files, batch_size, train=train, image_size=image_size, gpu=gpu,
                                   device_id=(self.device.index or 0) if gpu else None,
                                   threads=max(workers, 1), seed=seed + 1, shard_id=rank,
                                   num_shards=world_size)
        self.pipe.build()
        self.iterator = DALIGenericIterator(self.pipe, ["images", "labels"], reader_name="Reader",
                                            last_batch_policy=LastBatchPolicy.PARTIAL,
                                            auto_reset=True)
        self.channels_last = channels_last
        self.batch_size = batch_size
        n = len(files.files)  # DALI's shard i reads files [n*i // S, n*(i+1) // S)
        self._num_samples = n * (rank + 1) // world_size - n * rank // world_size
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return self._num_samples

    def __len__(self) -> int:
        return math.ceil(self._num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        try:
            for batch in self.iterator:
                x = batch[0]["images"].to(self.device, non_blocking=True)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = batch[0]["labels"].view(-1).long().to(self.device, non_blocking=True)
                yield x, y
        except RuntimeError as exc:
            raise RuntimeError(f"DALI pipeline failed: {str(exc).splitlines()[0]} ... Find every "
                               "unreadable file with `aft-fast data scan <folder>`") from exc

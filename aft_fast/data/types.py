"""The data package's shared types and constants: a leaf module (imports nothing from aft_fast),
so every loader, the folder scanner and `make_loaders` can use them without importing each other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_SEED = 0  # the fixed permutation that carves val (and train_eval) out of a training pool


@dataclass
class FileList:
    """Image files and their labels, in reading order."""
    files: list[str]
    labels: list[int]

    def pick(self, ids) -> FileList:
        return FileList([self.files[i] for i in ids], [self.labels[i] for i in ids])

    def relabel(self, new_label: list[int]) -> FileList:
        """The same files with label l replaced by new_label[l]."""
        return FileList(self.files, [new_label[label] for label in self.labels])


@dataclass
class DataSpec:
    """What the model needs to know about a data source. `num_classes` is the model's output
    count: with a class map it is the pretrained head's size, not the number of folder classes."""
    name: str
    num_classes: int
    channels: int
    image_size: int
    train_size: int
    class_names: list[str] = field(default_factory=list)
    augment: str = "none"  # the resolved augmentation preset of the training loader
    class_indices: list[int] | None = None  # with a class map: the model index of each class


class Loaders(NamedTuple):
    """The four loaders of one data source (see `aft_fast.data.loaders`)."""
    train: Any
    train_eval: Any
    val: Any
    test: Any
    spec: DataSpec

"""Class maps: the labels of a folder whose classes are a subset of a pretrained model's, as that
model's output indices, so a 1000-class head is fine-tuned and evaluated as it is (no head
replacement; accuracy is the argmax over all its outputs).

`load_class_map(spec)` reads, by file name or packaged name (`class_maps/<name>.json`, e.g.
"imagenette"):
- JSON `{"<folder class>": <index>, ...}` (the model has max index + 1 outputs), or
  `{"num_classes": N, "classes": {"<folder class>": <index>, ...}}`. Written for one folder:
  every class it names must be a folder class.
- a text list of the model's classes, one a line, index = line number (ImageNet's
  LOC_synset_mapping.txt: "n01440764 tench, Tinca tinca"; the first word is the class), or
  "<class> <index>" pairs. It describes the model, so it may name classes the folder lacks.
Either way every folder class must be in the map, and no two classes may share an index.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aft_fast.errors import OptionError

PACKAGED = Path(__file__).with_name("class_maps")


@dataclass
class ClassMap:
    indices: dict[str, int]  # class name -> model output index
    num_classes: int  # the model's output count
    source: str
    model_list: bool  # a list of the model's classes (may name classes a folder lacks)

    def labels_for(self, classes: list[str]) -> list[int]:
        """The model index of each folder class, in the folder's (sorted) class order."""
        missing = [c for c in classes if c not in self.indices]
        if missing:
            raise OptionError("class_map", f"{self.source} has no entry for folder class(es) "
                                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        extra = sorted(set(self.indices) - set(classes))
        if extra and not self.model_list:
            raise OptionError("class_map", f"{self.source} names class(es) the folder does not "
                                           f"have: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        return [self.indices[c] for c in classes]


def packaged_names() -> list[str]:
    return sorted(p.stem for p in PACKAGED.glob("*.json"))


MAX_CLASSES = 100_000  # ImageNet-21k has 21,841: more is a typo, and a classifier of GBs


def load_class_map(spec: str) -> ClassMap:
    path = Path(spec)
    if not path.is_file():
        if spec not in packaged_names():
            raise OptionError("class_map", f"{spec}: no such file, nor a packaged map "
                                           f"({', '.join(packaged_names())})")
        path = PACKAGED / f"{spec}.json"
    text = path.read_text()
    model_list = path.suffix.lower() != ".json"
    indices, num_classes = _from_list(text) if model_list else _from_json(text, spec)
    _check(indices, spec)
    num_classes = num_classes or max(indices.values()) + 1
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or \
            not 1 <= num_classes <= MAX_CLASSES:
        raise OptionError("class_map", f"{spec}: num_classes must be an integer in [1, "
                                       f"{MAX_CLASSES}] (a classifier's outputs), got "
                                       f"{str(num_classes)[:40]}")
    if max(indices.values()) >= num_classes:
        raise OptionError("class_map", f"{spec}: index {max(indices.values())} is not below "
                                       f"num_classes {num_classes}")
    return ClassMap(indices, num_classes, spec, model_list)


def _from_json(text: str, spec: str) -> tuple[dict, int | None]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError("class_map", f"{spec}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("classes"), dict):
        return dict(data["classes"]), data.get("num_classes")
    if not isinstance(data, dict):
        raise OptionError("class_map", f"{spec}: expected a JSON object {{class: index}}")
    return dict(data), None


def _from_list(text: str) -> tuple[dict[str, int], int | None]:
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if rows and all(len(r) == 2 and r[1].lstrip("-").isdigit() for r in rows):
        return {name: int(index) for name, index in rows}, None
    return {r[0]: i for i, r in enumerate(rows)}, len(rows)


def _check(indices: dict, spec: str) -> None:
    if not indices:
        raise OptionError("class_map", f"{spec}: the map is empty")
    bad = [k for k, v in indices.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if bad:
        raise OptionError("class_map", f"{spec}: indices must be integers >= 0 (see {bad[:3]})")
    seen: dict[int, str] = {}
    for name, index in indices.items():
        if index in seen:
            raise OptionError("class_map", f"{spec}: classes {seen[index]} and {name} both map "
                                           f"to output {index}")
        seen[index] = name

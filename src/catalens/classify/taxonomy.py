"""Taxonomies as data: a YAML file declaring a hierarchy of fields and attribute fields.

Format::

    name: my-shop
    hierarchy: [masterCategory, subCategory, articleType]   # field names, parent first
    tree:                                                   # nested mappings, one level per field
      Apparel:
        Topwear: [Tshirts, Shirts]                          # the last level may be a list
        Bottomwear: [Jeans]
      Footwear:
        Shoes: [Casual Shoes]
    attributes:                                             # flat fields and their allowed values
      gender: [Men, Women, Unisex]
      baseColour: [Black, White]
    unknown_below: 0.35                                     # optional (built-in taxonomy)

A node's mapping may hold ``imagenet: [indices or "a-b" ranges]`` (the ImageNet classes voting
for it, used by the built-in taxonomy). :func:`load_taxonomy` rejects a taxonomy that contradicts
itself: a name under two parents on one level, leaves at the wrong depth, an attribute named like
a hierarchy field, duplicated values, an ImageNet class mapped to two nodes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from catalens.errors import TaxonomyError

RESERVED = ("imagenet",)


@dataclass
class Taxonomy:
    name: str
    hierarchy: list[str]
    paths: list[tuple[str, ...]]  # every root-to-leaf path, one name per hierarchy level
    attributes: dict[str, list[str]] = field(default_factory=dict)
    imagenet: dict[tuple[str, ...], list[int]] = field(default_factory=dict)  # node path -> classes
    unknown_below: float = 0.35
    source: str = ""

    def values(self, field_name: str) -> list[str]:
        """Allowed values of a hierarchy level or attribute field, in declaration order."""
        if field_name in self.hierarchy:
            level = self.hierarchy.index(field_name)
            return list(dict.fromkeys(p[level] for p in self.paths))
        if field_name in self.attributes:
            return list(self.attributes[field_name])
        raise TaxonomyError(
            f"taxonomy {self.name!r} has no field {field_name!r} (fields: {', '.join(self.fields)})"
        )

    @property
    def fields(self) -> list[str]:
        return [*self.hierarchy, *self.attributes]

    def parent_of(self, field_name: str) -> str | None:
        if field_name in self.hierarchy:
            i = self.hierarchy.index(field_name)
            return self.hierarchy[i - 1] if i else None
        return None

    def parents(self, field_name: str) -> dict[str, str]:
        """value -> parent value for a hierarchy level below the root."""
        i = self.hierarchy.index(field_name)
        return {p[i]: p[i - 1] for p in self.paths} if i else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hierarchy": self.hierarchy,
            "paths": [list(p) for p in self.paths],
            "attributes": self.attributes,
            "unknown_below": self.unknown_below,
        }


def _as_indices(values: Any, where: str) -> list[int]:
    if not isinstance(values, list):
        raise TaxonomyError(f"{where}: 'imagenet' must be a list of class indices or 'a-b' ranges")
    out: list[int] = []
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            out.append(v)
        elif isinstance(v, str) and "-" in v:
            a, _, b = v.partition("-")
            try:
                lo, hi = int(a), int(b)
            except ValueError:
                raise TaxonomyError(f"{where}: bad ImageNet range {v!r}") from None
            if lo > hi:
                raise TaxonomyError(f"{where}: empty ImageNet range {v!r}")
            out.extend(range(lo, hi + 1))
        else:
            raise TaxonomyError(f"{where}: bad ImageNet class {v!r}")
    for i in out:
        if not 0 <= i < 1000:
            raise TaxonomyError(f"{where}: ImageNet class {i} is outside 0..999")
    return out


def parse_taxonomy(data: Any, source: str = "<taxonomy>") -> Taxonomy:
    """Validate a parsed YAML document and build a :class:`Taxonomy`."""
    _check_keys(data, source)
    name = str(data.get("name") or Path(source).stem)
    hierarchy, tree = _hierarchy_and_tree(data, source)
    paths: list[tuple[str, ...]] = []
    imagenet: dict[tuple[str, ...], list[int]] = {}
    if hierarchy:
        _walk_tree(tree, (), hierarchy, source, paths, imagenet)
    _check_one_parent(paths, hierarchy, source)
    attributes = _attributes(data, hierarchy, source)
    if not hierarchy and not attributes:
        raise TaxonomyError(f"{source}: the taxonomy declares no fields")
    _check_imagenet_unique(imagenet, source)
    unknown_below = _unknown_below(data, source)
    return Taxonomy(name, list(hierarchy), paths, attributes, imagenet, unknown_below, source)


def _check_keys(data: Any, source: str) -> None:
    """The document is a mapping of known keys."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"{source}: a taxonomy is a mapping with 'hierarchy', 'tree' and/or 'attributes'")
    unknown = set(data) - {
        "name",
        "version",
        "hierarchy",
        "tree",
        "attributes",
        "unknown_below",
        "description",
    }
    if unknown:
        raise TaxonomyError(f"{source}: unknown keys {sorted(unknown)}")


def _hierarchy_and_tree(data: dict[str, Any], source: str) -> tuple[list[str], Any]:
    """The hierarchy's field names and its tree, each required by the other."""
    hierarchy = data.get("hierarchy") or []
    if not isinstance(hierarchy, list) or not all(isinstance(h, str) and h for h in hierarchy):
        raise TaxonomyError(f"{source}: 'hierarchy' must be a list of field names")
    if len(set(hierarchy)) != len(hierarchy):
        raise TaxonomyError(f"{source}: 'hierarchy' names a field twice: {hierarchy}")
    tree = data.get("tree")
    if hierarchy and not isinstance(tree, dict | list):
        raise TaxonomyError(f"{source}: a hierarchy needs a 'tree'")
    if tree is not None and not hierarchy:
        raise TaxonomyError(f"{source}: 'tree' given without 'hierarchy'")
    return hierarchy, tree


def _walk_tree(
    node: Any,
    prefix: tuple[str, ...],
    hierarchy: list[str],
    source: str,
    paths: list[tuple[str, ...]],
    imagenet: dict[tuple[str, ...], list[int]],
) -> None:
    """Collect the root-to-leaf paths (and ImageNet classes) below ``node``, one level per field."""
    depth = len(prefix)
    where = f"{source}: {' > '.join(prefix) or 'tree'}"
    if depth == len(hierarchy):
        if isinstance(node, dict):
            extra = set(node) - set(RESERVED)
            if extra:
                raise TaxonomyError(
                    f"{where}: deeper than the hierarchy {hierarchy} (children {sorted(extra)[:5]})"
                )
            if "imagenet" in node:
                imagenet[prefix] = _as_indices(node["imagenet"], where)
        elif node is not None:
            raise TaxonomyError(f"{where}: deeper than the hierarchy {hierarchy}")
        paths.append(prefix)
        return
    if node is None:
        raise TaxonomyError(
            f"{where}: stops at level {depth + 1} of {len(hierarchy)} ({hierarchy[depth]} missing)"
        )
    if isinstance(node, list):
        if depth != len(hierarchy) - 1:
            raise TaxonomyError(f"{where}: a list is only allowed at the last level ({hierarchy[-1]})")
        node = {str(v): None for v in node} if len(set(map(str, node))) == len(node) else _dup(node, where)
    if not isinstance(node, dict):
        raise TaxonomyError(f"{where}: expected a mapping of {hierarchy[depth]} values")
    children = {k: v for k, v in node.items() if k not in RESERVED}
    if "imagenet" in node:
        imagenet[prefix] = _as_indices(node["imagenet"], where)
    if not children:
        raise TaxonomyError(f"{where}: no {hierarchy[depth]} values")
    for key, child in children.items():
        if not isinstance(key, str | int) or not str(key).strip():
            raise TaxonomyError(f"{where}: empty or invalid name {key!r}")
        _walk_tree(child, (*prefix, str(key)), hierarchy, source, paths, imagenet)


def _check_one_parent(paths: list[tuple[str, ...]], hierarchy: list[str], source: str) -> None:
    """A value must have one parent: predictions must be consistent with the hierarchy."""
    for level in range(1, len(hierarchy)):
        parent: dict[str, str] = {}
        for p in paths:
            prev = parent.setdefault(p[level], p[level - 1])
            if prev != p[level - 1]:
                raise TaxonomyError(
                    f"{source}: {hierarchy[level]} {p[level]!r} is under two parents: {prev!r} and {p[level - 1]!r}"
                )


def _attributes(data: dict[str, Any], hierarchy: list[str], source: str) -> dict[str, list[str]]:
    """The flat attribute fields and their allowed values (non-empty, no duplicates)."""
    attributes_raw = data.get("attributes") or {}
    if not isinstance(attributes_raw, dict):
        raise TaxonomyError(f"{source}: 'attributes' must map field names to lists of values")
    attributes: dict[str, list[str]] = {}
    for key, values in attributes_raw.items():
        if key in hierarchy:
            raise TaxonomyError(f"{source}: attribute {key!r} is also a hierarchy field")
        if not isinstance(values, list) or not values:
            raise TaxonomyError(f"{source}: attribute {key!r} needs a non-empty list of values")
        vals = [str(v) for v in values]
        dups = sorted({v for v in vals if vals.count(v) > 1})
        if dups:
            raise TaxonomyError(f"{source}: attribute {key!r} lists {dups} twice")
        attributes[str(key)] = vals
    return attributes


def _check_imagenet_unique(imagenet: dict[tuple[str, ...], list[int]], source: str) -> None:
    """An ImageNet class votes for one node only."""
    seen: dict[int, tuple[str, ...]] = {}
    for node, idx in imagenet.items():
        for i in idx:
            if i in seen and seen[i] != node:
                raise TaxonomyError(
                    f"{source}: ImageNet class {i} is mapped to both {' > '.join(seen[i])} and {' > '.join(node)}"
                )
            seen[i] = node


def _unknown_below(data: dict[str, Any], source: str) -> float:
    """The 'unknown_below' threshold, a number in [0, 1] (default 0.35)."""
    try:
        unknown_below = float(data.get("unknown_below", 0.35))
    except (TypeError, ValueError):
        raise TaxonomyError(f"{source}: 'unknown_below' must be a number") from None
    if not 0.0 <= unknown_below <= 1.0:
        raise TaxonomyError(f"{source}: 'unknown_below' must be in [0, 1]")
    return unknown_below


def _dup(values: list[Any], where: str) -> dict[str, None]:
    vals = [str(v) for v in values]
    raise TaxonomyError(f"{where}: lists {sorted({v for v in vals if vals.count(v) > 1})} twice")


def load_taxonomy(path: str | os.PathLike[str]) -> Taxonomy:
    """Read and validate a taxonomy YAML file (``"builtin"``: the packaged e-commerce taxonomy)."""
    import yaml

    if str(path) == "builtin":
        text = resources.files("catalens.classify").joinpath("data/ecommerce.yaml").read_text()
        source = "builtin:ecommerce.yaml"
    else:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise TaxonomyError(f"{p}: cannot read taxonomy ({exc.strerror or exc})") from exc
        source = str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{source}: not valid YAML ({exc})") from exc
    return parse_taxonomy(data, source)


def taxonomy_from_paths(
    fields: list[str], rows: list[tuple[str, ...]], name: str = "from-labels"
) -> Taxonomy:
    """A hierarchy observed in labelled data; a value under two parents is an error."""
    tax_paths = list(dict.fromkeys(rows))
    tree: dict[str, Any] = {}
    for p in tax_paths:
        node = tree
        for v in p[:-1]:
            node = node.setdefault(v, {})
        node[p[-1]] = None
    return parse_taxonomy({"name": name, "hierarchy": fields, "tree": tree}, f"labels ({' > '.join(fields)})")

"""The versioned model registry: one weights file and one JSON profile per member, an index with checksums.

Layout::

    artifacts/registry/
        LATEST                 "v0002": the newest complete version
        v0001/ index.json      {"version", "created", "members": [...], "sha256": {file: hex}, "ensembles": {...}}
               <name>.pt       torch state_dict (kind "cnn")      | <name>.joblib  pickled member (kind "features")
               <name>.json     profile: params, macs, latency_ms, cv, oof, inputs, config, weights_file, sha256
        v0002/ ...

A new training run writes a new version folder (built under a temporary name, renamed when complete) and
then moves LATEST, so a service that loaded v0001 never sees a half-written v0002 and nothing is ever
overwritten. Every load checks the SHA-256 of the weights file and of the profile against the index; a
corrupted or truncated file raises ``RegistryIntegrityError``. ``load(name)`` without a version falls back
to the newest older version whose files verify (and says so in the log), and members already loaded stay
served from memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .errors import HolmesInputError, InvalidFieldError

log = logging.getLogger(__name__)
DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "artifacts" / "registry"
WEIGHTS_SUFFIX = {"cnn": ".pt", "features": ".joblib"}
SUPERNET_FILE = "supernet.pt"  # every subnet member of a version reads this one weights file


class RegistryError(HolmesInputError):
    """A registry folder, version or member that does not exist or cannot be used."""


class RegistryIntegrityError(RegistryError):
    """A file whose checksum does not match the index (corrupted, truncated or replaced)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_registry_path() -> Path:
    env = os.environ.get("HOLMES_REGISTRY")
    return Path(env).expanduser() if env else DEFAULT_REGISTRY


class Registry:
    """Read and write a registry folder. ``Registry()`` opens $HOLMES_REGISTRY or artifacts/registry."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_registry_path()
        self._loaded: dict[tuple[str, str], object] = {}
        self._supernets: dict[str, object] = {}  # weights sha256 -> Supernet shared by its subnet members

    # ---- reading ------------------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Complete versions (folders with an index.json), oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.glob("v[0-9][0-9][0-9][0-9]") if (p / "index.json").is_file())

    def latest(self) -> str:
        """The version LATEST names (or the newest complete one when LATEST is missing)."""
        versions = self.versions()
        if not versions:
            raise RegistryError(f"registry {self.path} has no version: run `holmes train --registry {self.path}`")
        pointer = self.path / "LATEST"
        if pointer.is_file():
            v = pointer.read_text().strip()
            if v in versions:
                return v
            log.warning("registry %s: LATEST names %r, which is not a complete version; using %s", self.path, v, versions[-1])
        return versions[-1]

    def index(self, version: str | None = None) -> dict:
        v = version or self.latest()
        f = self.path / v / "index.json"
        if not f.is_file():
            raise InvalidFieldError("version", f"must be a version of registry {self.path}", v, self.versions())
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise RegistryIntegrityError(f"registry {self.path}: {v}/index.json is not valid JSON ({e})") from e

    def members(self, version: str | None = None) -> list[str]:
        return [m["name"] for m in self.index(version)["members"]]

    def profile(self, name: str, version: str | None = None, verify: bool = True) -> dict:
        v = version or self.latest()
        entry = self._entry(name, v)
        f = self.path / v / entry["profile_file"]
        if verify:
            self._verify(v, entry["profile_file"])
        return json.loads(f.read_text())

    def profiles(self, version: str | None = None) -> list[dict]:
        v = version or self.latest()
        return [self.profile(n, v) for n in self.members(v)]

    def ensembles(self, version: str | None = None) -> dict:
        return self.index(version).get("ensembles", {})

    def thresholds(self, version: str | None = None) -> dict[str, float]:
        """Decision threshold per member and per ensemble row (chosen on all out-of-fold predictions)."""
        v = version or self.latest()
        out = {p["name"]: float(p["cv"]["threshold"]) for p in self.profiles(v)}
        out.update({k: float(e["cv"]["threshold"]) for k, e in self.ensembles(v).items()})
        return out

    def load(self, name: str, version: str | None = None, fallback: bool = True):
        """The member ``name`` (a ``models.member.Member``) with its profile's threshold as ``threshold_``.

        With ``version=None`` the LATEST version is tried first; if its files fail verification and
        ``fallback`` is true, older versions holding ``name`` are tried, newest first.
        """
        if version is not None:
            return self._load_exact(name, version)
        candidates = [v for v in reversed(self.versions()) if v <= self.latest()]
        errors: list[RegistryError] = []
        for v in candidates:
            if name not in self.members(v):
                continue
            try:
                member = self._load_exact(name, v)
            except RegistryIntegrityError as e:
                if not fallback:
                    raise
                log.error("%s; falling back to an older version", e)
                errors.append(e)
                continue
            if errors:
                log.warning("registry %s: serving %s from %s", self.path, name, v)
            return member
        if errors:
            raise errors[0]
        raise InvalidFieldError("member", f"must be registered in {self.path}", name, self.members())

    def load_all(self, version: str | None = None, kinds: Iterable[str] | None = None) -> list:
        v = version or self.latest()
        profiles = {p["name"]: p for p in self.profiles(v)}
        want = set(kinds) if kinds is not None else None
        return [self.load(n, v) for n in self.members(v) if want is None or profiles[n]["kind"] in want]

    def _entry(self, name: str, version: str) -> dict:
        for m in self.index(version)["members"]:
            if m["name"] == name:
                return m
        raise InvalidFieldError("member", f"must be registered in {self.path}/{version}", name, self.members(version))

    def _verify(self, version: str, filename: str) -> Path:
        f = self.path / version / filename
        expected = self.index(version).get("sha256", {}).get(filename)
        if expected is None:
            raise RegistryIntegrityError(f"registry {self.path}/{version}: {filename} has no checksum in index.json")
        if not f.is_file():
            raise RegistryIntegrityError(f"registry {self.path}/{version}: {filename} is missing")
        got = sha256_file(f)
        if got != expected:
            raise RegistryIntegrityError(
                f"registry {self.path}/{version}: {filename} sha256 must be {expected[:16]}... (index.json), "
                f"got {got[:16]}... ({f.stat().st_size} bytes): the file is corrupted or truncated; refusing to load it"
            )
        return f

    def _load_exact(self, name: str, version: str):
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        entry = self._entry(name, version)
        profile = self.profile(name, version)
        wfile = self._verify(version, entry["weights_file"])
        if profile.get("sha256") != self.index(version)["sha256"][entry["weights_file"]]:
            raise RegistryIntegrityError(f"registry {self.path}/{version}: profile of {name} names a different weights checksum")
        member = _load_member(profile, wfile, self._supernets)
        member.threshold_ = float(profile.get("cv", {}).get("threshold", 0.5))
        member.version = version
        self._loaded[key] = member
        return member

    # ---- writing ------------------------------------------------------------------------------------------
    def next_version(self) -> str:
        versions = self.versions() + [p.name.split(".")[0] for p in self.path.glob("v[0-9][0-9][0-9][0-9].*")] if self.path.is_dir() else []
        n = max((int(v[1:5]) for v in versions), default=0)
        return f"v{n + 1:04d}"

    def write_version(self, entries: list[dict], ensembles: dict | None = None, meta: dict | None = None) -> str:
        """Write a new version; returns its name. ``entries``: {"member", "profile"} or {"copy_from": (version, name)}.

        Each profile gets "version", "weights_file" and "sha256" filled in here.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        version = self.next_version()
        tmp = self.path / f"{version}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        index = {"version": version, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "members": [],
                 "sha256": {}, "ensembles": ensembles or {}, **(meta or {})}
        written: dict[str, tuple] = {}  # weights file -> what wrote it
        for e in entries:
            if "copy_from" in e:
                old_v, name = e["copy_from"]
                old = self._entry(name, old_v)
                self._verify(old_v, old["weights_file"])
                _claim(written, old["weights_file"], ("copy", old_v), name)
                shutil.copyfile(self.path / old_v / old["weights_file"], tmp / old["weights_file"])
                profile = self.profile(name, old_v)
                kind = profile["kind"]
            else:
                member, profile = e["member"], dict(e["profile"])
                name, kind = member.name, member.kind
                weights_file = SUPERNET_FILE if kind == "subnet" else f"{name}{WEIGHTS_SUFFIX.get(kind, '.pkl')}"
                source = ("supernet", id(member.supernet)) if kind == "subnet" else ("member", name)
                if _claim(written, weights_file, source, name):  # a version's subnets share one file, written once
                    _save_member(member, tmp / weights_file)
                profile["weights_file"] = weights_file
            weights_file = profile["weights_file"]
            profile.update(name=name, kind=kind, version=version, sha256=sha256_file(tmp / weights_file))
            profile_file = f"{name}.json"
            (tmp / profile_file).write_text(json.dumps(profile, indent=1))
            index["sha256"][weights_file] = profile["sha256"]
            index["sha256"][profile_file] = sha256_file(tmp / profile_file)
            index["members"].append({"name": name, "kind": kind, "weights_file": weights_file, "profile_file": profile_file})
        (tmp / "index.json").write_text(json.dumps(index, indent=1))
        tmp.rename(self.path / version)
        pointer = self.path / "LATEST.tmp"
        pointer.write_text(version + "\n")
        pointer.replace(self.path / "LATEST")
        return version


def _claim(written: dict, weights_file: str, source: tuple, name: str) -> bool:
    """Record that ``source`` writes ``weights_file``; False when it already did. Two different sources for one
    file (subnets of two supernets, or copied and new subnets in one version) are refused."""
    if weights_file in written:
        if written[weights_file] != source:
            raise InvalidFieldError("entries", f"must not write {weights_file} from two sources (subnets of one version "
                                    "share one supernet)", name)
        return False
    written[weights_file] = source
    return True


def _save_member(member, path: Path) -> None:
    if member.kind == "cnn":
        import torch

        torch.save(member.state_dict(), path)
    elif member.kind == "subnet":
        import torch

        torch.save({"config": member.supernet.cfg.to_dict(), "state": member.supernet.state_dict()}, path)
    else:
        try:
            import joblib

            # lzma: forests' node arrays pack ~35 % smaller than with zlib (1.07 vs 1.65 MB for features-vote
            # on 501 records), loading in ~0.1 s; keeps the committed registry small as the data grows
            joblib.dump(member, path, compress=("lzma", 3))
        except ImportError:  # pragma: no cover - joblib ships with scikit-learn
            path.write_bytes(pickle.dumps(member))


def _load_member(profile: dict, path: Path, supernets: dict | None = None):
    kind = profile["kind"]
    if kind == "subnet":
        return _load_subnet(profile, path, supernets if supernets is not None else {})
    if kind == "cnn":
        import torch

        from .cnn import CNNConfig, CNNMember

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return CNNMember.from_state_dict(CNNConfig.from_dict(profile["config"]), state, profile["name"])
        except (RuntimeError, KeyError, ValueError, EOFError) as e:
            raise RegistryIntegrityError(f"registry file {path}: cannot be read as a {profile['name']} state_dict ({e})") from e
    import joblib

    try:
        return joblib.load(path)
    except (EOFError, pickle.UnpicklingError, ValueError) as e:
        raise RegistryIntegrityError(f"registry file {path}: cannot be unpickled ({e})") from e


def _load_subnet(profile: dict, path: Path, supernets: dict):
    """A subnet member over the version's one supernet (loaded once per weights checksum, then shared)."""
    import torch

    from .subnet import SubnetMember
    from .supernet import SubnetConfig, Supernet, SupernetConfig

    key = profile["sha256"]
    try:
        subnet = SubnetConfig(**profile["config"]["subnet"])
        net = supernets.get(key)
        if net is None:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = Supernet(SupernetConfig.from_dict(saved["config"]))
            net.load_state_dict(saved["state"])
            net.eval()
            supernets[key] = net
        return SubnetMember(net, subnet, profile["name"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as e:
        raise RegistryIntegrityError(f"registry file {path}: cannot be read as supernet subnet {profile.get('name')} ({e})") from e

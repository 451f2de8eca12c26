"""Hugging Face Hub ids (`org/name`) as models: config.json and safetensors sizes, fetched
with huggingface_hub (the `kvcalc[hf]` extra).

Network I/O lives here and nowhere else. Offline is fast and quiet: with HF_HUB_OFFLINE=1
(or TRANSFORMERS_OFFLINE=1) only the local cache is read; otherwise one TCP connect with a
3-second timeout decides, before huggingface_hub would retry an unreachable Hub for half a
minute with a warning per try. Every failure is one KvcalcError line with a hint.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kvcalc.errors import KvcalcError

# org/name as the Hub spells repository ids (optionally @revision)
_HUB_ID = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(@[\w./-]+)?$"
)
PROBE_TIMEOUT_S = 3.0
_HINT = "download its config.json and pass the file (or its folder) instead"


def is_hub_id(name: str) -> bool:
    """Return True when `name` reads as a Hub repository id (`org/name`), not a file name."""
    return bool(_HUB_ID.match(name)) and not name.lower().endswith((".json", ".yaml", ".yml"))


def _hub() -> Any:
    import importlib

    try:
        hub = importlib.import_module("huggingface_hub")
    except ImportError:
        raise KvcalcError(
            "a Hugging Face id needs huggingface_hub: pip install 'kvcalc[hf]' "
            f"(from a clone: pip install '.[hf]'), or {_HINT}"
        ) from None
    try:  # quiet: no progress bars or retry warnings on stderr, kvcalc says it in one line
        utils = importlib.import_module("huggingface_hub.utils")
        utils.disable_progress_bars()
        utils.logging.set_verbosity_error()
    except (ImportError, AttributeError):  # another layout (or a test's fake): cosmetics only
        pass
    return hub


def offline() -> bool:
    """Return True when the environment asks for the cache only."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _reachable() -> bool:
    """Return True when a TCP connection to the Hub endpoint opens within PROBE_TIMEOUT_S."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # through a proxy a direct connect says nothing; let the client try
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _split(repo: str) -> tuple[str, str | None]:
    name, _, revision = repo.partition("@")
    return name, revision or None


def fetch_config(repo: str) -> Path:
    """Return the local path of a Hub repo's config.json (from the cache when offline).

    The safetensors index is fetched beside it when the repo has one, so that the
    checkpoint's exact size is read as for a local folder, and so is ModelOpt's
    hf_quant_config.json, which engines read for the weights' and the KV cache's formats
    (an hf_quant_config.json-only checkpoint would otherwise be sized in the model dtype).
    """
    hub = _hub()
    name, revision = _split(repo)
    local_only = offline() or not _reachable()
    try:
        path = Path(
            hub.hf_hub_download(name, "config.json", revision=revision, local_files_only=local_only)
        )
    # the hub raises many error types (not cached, gated, unknown repo, HTTP): all mean "cannot"
    except Exception as exc:
        if local_only:
            why = "HF_HUB_OFFLINE is set" if offline() else "the Hub cannot be reached"
            raise KvcalcError(
                f"cannot fetch {repo}/config.json: {why} and it is not in the local cache; {_HINT}"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KvcalcError(f"cannot fetch {repo}/config.json from the Hub: {reason}") from None
    import contextlib

    for extra in ("model.safetensors.index.json", "hf_quant_config.json"):
        # a single-file or non-safetensors repo has no index, most have no ModelOpt recipe
        with contextlib.suppress(Exception):
            hub.hf_hub_download(name, extra, revision=revision, local_files_only=local_only)
    return path


def safetensors_bytes(repo: str) -> tuple[int, dict[str, int]] | None:
    """Return (exact tensor bytes, parameters per dtype) of a Hub repo's safetensors, read from
    the file headers only (huggingface_hub.get_safetensors_metadata); None when offline or
    when the repo has no safetensors."""
    if offline():
        return None
    hub = _hub()
    name, revision = _split(repo)
    if not _reachable():
        return None
    try:
        meta = hub.get_safetensors_metadata(name, revision=revision)
    except Exception:  # no safetensors, gated, or the Hub said no: the size stays unknown
        return None
    total = 0
    for file_meta in meta.files_metadata.values():
        for tensor in file_meta.tensors.values():
            start, end = tensor.data_offsets
            total += int(end) - int(start)
    counts = {str(k): int(v) for k, v in dict(meta.parameter_count).items()}
    return (total, counts) if total > 0 else None


def load_spec(
    repo: str, assume_standard: bool = False, name: str | None = None, source: str | None = None
) -> Any:
    """Return hf.Imported for a Hub repo: its config.json imported (citing the Hub URL), with
    the checkpoint's exact bytes from the safetensors headers when no index gave them."""
    from kvcalc.presets import import_hf

    repo_name, revision = _split(repo)
    url = source or f"https://huggingface.co/{repo_name}/blob/{revision or 'main'}/config.json"
    imported = import_hf(fetch_config(repo), name=name, source=url, assume_standard=assume_standard)
    if imported.spec.checkpoint_bytes is None:
        sizes = safetensors_bytes(repo)
        if sizes is not None:
            spec = imported.spec.model_copy(update={"checkpoint_bytes": sizes[0]})
            imported = type(imported)(spec=spec, warnings=imported.warnings)
    return imported

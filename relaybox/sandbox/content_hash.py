"""Dropbox's content hash.

SHA-256 of the concatenated SHA-256 digests of each 4 MiB block, as hex.
https://www.dropbox.com/developers/reference/content-hash
"""

import hashlib

BLOCK_SIZE = 4 * 1024 * 1024


def content_hash(data: bytes) -> str:
    overall = hashlib.sha256()
    for start in range(0, len(data), BLOCK_SIZE):
        overall.update(hashlib.sha256(data[start : start + BLOCK_SIZE]).digest())
    return overall.hexdigest()

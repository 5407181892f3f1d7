#!/usr/bin/env python3
"""tuspy (PyPI `tuspy`, module `tusclient`) against mtfu: a client nobody here wrote.

Run by the Rust test `tus::tuspy_uploads_through_interruptions_and_restarts` (tests/it/tus.rs),
which starts the real `mtfu` binary and restarts it in the middle. Two phases:

  --stop-at BYTES   create the upload and send chunks until the offset reaches BYTES, then exit
                    (the client is interrupted; its URL stays in tuspy's URL storage);
  (no --stop-at)    resume: tuspy finds the URL in its storage, asks the server for the offset
                    (HEAD) and sends the rest, retrying through server restarts; then the file
                    is listed and downloaded, and its sha256 compared with the local file's.

Each chunk's new offset is printed as `offset N` (flushed), so the driver can kill the server
at a point of its choosing. TLS is verified against mtfu's certificate via REQUESTS_CA_BUNDLE.
"""

import argparse
import hashlib
import json
import sys
import urllib.request
import ssl

from tusclient import client as tus_client
from tusclient.storage import filestorage


def say(*a):
    print(*a, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="https://localhost:PORT")
    p.add_argument("--token", required=True)
    p.add_argument("--ca", required=True, help="mtfu's certificate (PEM)")
    p.add_argument("--file", required=True)
    p.add_argument("--storage", required=True, help="tuspy URL storage (a JSON file)")
    p.add_argument("--chunk", type=int, default=1 << 20)
    p.add_argument("--stop-at", type=int)
    args = p.parse_args()

    client = tus_client.TusClient(
        args.base + "/api/v2/uploads",
        headers={"Authorization": "Bearer " + args.token},
    )
    storage = filestorage.FileStorage(args.storage)
    uploader = client.uploader(
        file_path=args.file,
        chunk_size=args.chunk,
        metadata={
            "filename": "interop.bin",
            "resource": "interop",
            "resource_id": "1",
            "content_type": "application/octet-stream",
        },
        store_url=True,
        url_storage=storage,
        retries=30,
        retry_delay=1,
        upload_checksum=True,
    )
    size = uploader.get_file_size()
    if uploader.url:
        say("resumed", uploader.url, "at offset", uploader.offset)
    else:
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
        say("created", uploader.url)

    stop = args.stop_at if args.stop_at is not None else size
    while uploader.offset < stop:
        uploader.upload_chunk()
        say("offset", uploader.offset)
    storage.close()
    if args.stop_at is not None:
        say("interrupted at offset", uploader.offset)
        return 0

    # The upload is a file now: listed with its digest, and downloading the same bytes.
    ctx = ssl.create_default_context(cafile=args.ca)
    req = urllib.request.Request(
        args.base + "/api/files/interop/1",
        headers={"Authorization": "Bearer " + args.token},
    )
    with urllib.request.urlopen(req, context=ctx) as r:
        listing = json.load(r)
    files = [f for f in listing["files"] if f["name"] == "interop.bin"]
    if len(files) != 1:
        say("not listed:", listing)
        return 1
    f = files[0]
    want = sha256_file(args.file)
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(f["url"], context=ctx) as r:
        for block in iter(lambda: r.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    got = h.hexdigest()
    say("listed", f["size"], f["sha256"], "downloaded", n, got, "local", size, want)
    if f["size"] == size and n == size and f["sha256"] == want and got == want:
        say("sha256 ok", want)
        return 0
    say("sha256 MISMATCH")
    return 1


if __name__ == "__main__":
    sys.exit(main())

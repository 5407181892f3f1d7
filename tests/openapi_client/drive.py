"""Drive a live mtfu with the client openapi-python-client generated from its OpenAPI document
(.ci/openapi-client): each step calls a generated operation and checks what came back, parsed
by the generated models. Usage: drive.py BASE_URL (the package mtfu_client on PYTHONPATH)."""

import base64
import hashlib
import io
import sys
import urllib.parse

from mtfu_client import AuthenticatedClient, Client
from mtfu_client.api.account import v_2_limits, v_2_usage
from mtfu_client.api.files import download, list_files, list_resource_files, upload
from mtfu_client.api.tokens import obtain_token, refresh_token
from mtfu_client.api.uploads import tus_create, tus_head, tus_options, tus_patch
from mtfu_client.api.v2 import (
    v_2_create_url,
    v_2_delete_file,
    v_2_get_content,
    v_2_get_file,
    v_2_list_files,
    v_2_put_file,
)
from mtfu_client.models import (
    Credentials,
    RefreshRequest,
    TusCreateTusResumable,
    TusHeadTusResumable,
    TusPatchTusResumable,
    UploadForm,
)
from mtfu_client.types import File

base = sys.argv[1]
steps = 0


def check(cond, what, response=None):
    global steps
    if not cond:
        extra = ""
        if response is not None:
            extra = f": {response.status_code} {response.content[:300]!r}"
        sys.exit(f"drive: {what} failed{extra}")
    steps += 1


anonymous = Client(base_url=base, raise_on_unexpected_status=True)

# Tokens.
r = obtain_token.sync_detailed(client=anonymous, body=Credentials(username="john1", password="test"))
check(r.status_code == 200 and r.parsed.access and r.parsed.refresh, "obtainToken", r)
pair = r.parsed
r = obtain_token.sync_detailed(client=anonymous, body=Credentials(username="john1", password="nope"))
check(r.status_code == 401, "obtainToken with a wrong password is 401", r)
r = refresh_token.sync_detailed(client=anonymous, body=RefreshRequest(refresh=pair.refresh))
check(r.status_code == 200 and r.parsed.access != pair.access, "refreshToken", r)
client = AuthenticatedClient(base_url=base, token=r.parsed.access, raise_on_unexpected_status=True)

# Multipart upload, then the listings.
data = b"hello from the generated client\n"
form = UploadForm(
    file=File(payload=io.BytesIO(data), file_name="hello.txt", mime_type="text/plain"),
    resource="opc",
    resource_id="1",
)
r = upload.sync_detailed(client=client, body=form)
check(r.status_code == 200, "upload", r)
uploaded = r.parsed.file
check(uploaded.name == "hello.txt" and uploaded.size == len(data), "upload: the file object", r)
check(uploaded.sha256 == hashlib.sha256(data).hexdigest(), "upload: sha256", r)
file_id = uploaded.id

r = list_files.sync_detailed(client=client, resource="opc")
check(r.status_code == 200 and r.parsed.count == 1, "listFiles", r)
check(r.parsed.files[0].id == file_id, "listFiles: the uploaded file", r)
r = list_resource_files.sync_detailed("opc", "1", client=client)
check(r.status_code == 200 and r.parsed.files[0].url.startswith("http"), "listResourceFiles", r)
r = v_2_list_files.sync_detailed(client=client, resource="opc")
check(r.status_code == 200 and [f.id for f in r.parsed.files] == [file_id], "v2ListFiles", r)

# v2: metadata, content (whole and a range), a signed link and its download.
r = v_2_get_file.sync_detailed(file_id, client=client)
check(r.status_code == 200 and r.parsed.id == file_id and r.parsed.url, "v2GetFile", r)
r = v_2_get_content.sync_detailed(file_id, client=client)
check(r.status_code == 200 and r.content == data, "v2GetContent", r)
r = v_2_get_content.sync_detailed(file_id, client=client, range_="bytes=0-4")
check(r.status_code == 206 and r.content == data[:5], "v2GetContent with Range", r)
r = v_2_create_url.sync_detailed(file_id, client=client, expires_in=600)
check(r.status_code == 200 and r.parsed.url.startswith(base + "/dl/"), "v2CreateUrl", r)
link = urllib.parse.urlsplit(r.parsed.url)
_, _, tenant, dl_id = link.path.rsplit("/", 3)
q = dict(urllib.parse.parse_qsl(link.query))
r = download.sync_detailed(
    tenant, dl_id, client=anonymous, expires=int(q["expires"]), sig=q["sig"], iat=int(q["iat"])
)
check(r.status_code == 200 and r.content == data, "download (signed link, no token)", r)

# Raw PUT.
raw = bytes(range(256)) * 4
r = v_2_put_file.sync_detailed("opc", "2", "raw.bin", client=client, body=File(payload=io.BytesIO(raw)))
check(r.status_code == 201 and r.parsed.size == len(raw), "v2PutFile", r)
check(r.headers["location"].endswith("/api/v2/files/" + r.parsed.id), "v2PutFile: Location", r)
put_id = r.parsed.id
r = v_2_get_content.sync_detailed(put_id, client=client)
check(r.status_code == 200 and r.content == raw, "v2GetContent of the PUT file", r)

# A whole tus upload: discovery, creation, two chunks, the file.
r = tus_options.sync_detailed(client=anonymous)
check(r.status_code == 204 and "creation" in r.headers["tus-extension"], "tusOptions", r)
chunked = b"0123456789" * 100
b64 = lambda s: base64.b64encode(s.encode()).decode()
meta = f"filename {b64('tus.txt')},resource {b64('opc')},resource_id {b64('3')}"
r = tus_create.sync_detailed(
    client=client,
    tus_resumable=TusCreateTusResumable("1.0.0"),
    upload_length=len(chunked), upload_metadata=meta
)
check(r.status_code == 201 and r.headers["location"], "tusCreate", r)
upload_id = r.headers["location"].rsplit("/", 1)[1]
r = tus_patch.sync_detailed(
    upload_id,
    client=client,
    tus_resumable=TusPatchTusResumable("1.0.0"),
    upload_offset=0,
    body=File(payload=io.BytesIO(chunked[:600])),
)
check(r.status_code == 204 and r.headers["upload-offset"] == "600", "tusPatch (first chunk)", r)
r = tus_head.sync_detailed(upload_id, client=client, tus_resumable=TusHeadTusResumable("1.0.0"))
check(r.status_code == 200 and r.headers["upload-offset"] == "600", "tusHead", r)
r = tus_patch.sync_detailed(
    upload_id,
    client=client,
    tus_resumable=TusPatchTusResumable("1.0.0"),
    upload_offset=600,
    body=File(payload=io.BytesIO(chunked[600:])),
)
check(r.status_code == 204, "tusPatch (last chunk)", r)
r = v_2_list_files.sync_detailed(client=client, resource="opc", resource_id="3")
check(r.status_code == 200 and r.parsed.files[0].size == len(chunked), "the tus file is listed", r)

# Account.
r = v_2_usage.sync_detailed(client=client)
check(r.status_code == 200 and r.parsed.files == 3, "v2Usage", r)
r = v_2_limits.sync_detailed(client=anonymous)
check(r.status_code == 200 and r.parsed.tus.version == "1.0.0", "v2Limits", r)

# Delete, and it is gone.
r = v_2_delete_file.sync_detailed(put_id, client=client)
check(r.status_code == 204, "v2DeleteFile", r)
r = v_2_get_file.sync_detailed(put_id, client=client)
check(r.status_code == 404, "v2GetFile after delete is 404", r)

print(f"drive: {steps} passed, 0 failed")

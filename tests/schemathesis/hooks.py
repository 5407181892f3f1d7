"""schemathesis hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis
from schemathesis.core import media_types
from schemathesis.core.deserialization import deserialize_yaml

# tus chunks are raw bytes under their own media type; send them as schemathesis sends
# application/octet-stream bodies.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@schemathesis.deserializer(*media_types.YAML_MEDIA_TYPES)
def _yaml_or_file_bytes(_ctx, response):
    """YAML, or a stored file served with the YAML type its uploader claimed.

    mtfu sends YAML only as file bytes (PUT with `Content-Type: application/x-yaml`, then GET
    .../content). schemathesis' own YAML deserializer lets yaml's errors escape (they are not
    ValueErrors), which kills a worker thread; as ValueError they mean "not YAML", which is
    what they are.
    """
    try:
        return deserialize_yaml(response.content.decode(response.encoding or "utf-8"))
    except Exception as exc:
        raise ValueError(f"not YAML: {exc}") from exc

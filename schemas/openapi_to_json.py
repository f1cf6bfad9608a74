#!/usr/bin/env python3
"""Converts schemas/openapi.yaml into a C source file holding it as compact JSON, for the front
end's GET /v1/openapi.json. Run by the build (http/CMakeLists.txt), never by hand; the output
goes to the build directory.

    openapi_to_json.py INPUT.yaml OUTPUT.c

The C file defines http_openapi_json (NUL-terminated), http_openapi_json_len and
http_openapi_etag (a strong entity tag derived from the JSON bytes).
"""
import hashlib
import json
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("openapi_to_json.py: the yaml module is missing (Debian: python3-yaml, installed by scripts/setup.sh)")


def not_json(value):
    # YAML has types JSON lacks (dates, sets, binary): quote such values in the YAML.
    raise TypeError(f"{value!r} ({type(value).__name__}) has no JSON form; quote it in the YAML")


def c_literal_lines(text, width=100):
    """ASCII text as adjacent C string literals. '?' is escaped so no trigraph can form."""
    escapes = {'"': '\\"', "\\": "\\\\", "?": "\\?"}
    line = []
    size = 0
    for ch in text:
        piece = escapes.get(ch, ch) if 0x20 <= ord(ch) < 0x7F else f"\\{ord(ch):03o}"
        line.append(piece)
        size += len(piece)
        if size >= width:
            yield '"' + "".join(line) + '"'
            line, size = [], 0
    if line or not text:
        yield '"' + "".join(line) + '"'


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: openapi_to_json.py INPUT.yaml OUTPUT.c")
    source, output = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1."):
        sys.exit(f"{source}: not an OpenAPI 3.1 document")
    try:
        text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=not_json)
    except (TypeError, ValueError) as e:
        sys.exit(f"{source}: {e}")
    etag = '"' + hashlib.sha256(text.encode("ascii")).hexdigest()[:32] + '"'

    body = "\n    ".join(c_literal_lines(text))
    etag_literal = "".join(c_literal_lines(etag))
    c = (
        "/* Generated from schemas/openapi.yaml by schemas/openapi_to_json.py. Do not edit. */\n"
        "#include <stddef.h>\n\n"
        f"const char http_openapi_json[] =\n    {body};\n"
        "const size_t http_openapi_json_len = sizeof(http_openapi_json) - 1;\n"
        f"const char http_openapi_etag[] = {etag_literal};\n"
    )
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(c)
    os.replace(tmp, output)


if __name__ == "__main__":
    main()

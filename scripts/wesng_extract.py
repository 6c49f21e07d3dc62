#!/usr/bin/env python3
"""Cuts WES-NG's definitions down to what kbgap bundles: the rows posted before MSRC's CVRF API
begins (April 2016), in WES-NG's own format (a zip holding CVEs_<date>.csv and its licence).

    scripts/wesng_extract.py definitions.zip LICENSE.txt data/catalog/wesng-before-2016.zip

The rows are copied byte for byte (header included), so `kbgap catalog import` reads the extract
and WES-NG's full definitions the same way (docs/catalog.md, "Before 2016"). The zip is written
with fixed timestamps, so the same input gives the same bytes."""
import io
import re
import sys
import zipfile

CUTOFF = b'"20160401"'  # DatePosted is the first, quoted, field: "YYYYMMDD"


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.splitlines()[3].strip(), file=sys.stderr)
        return 2
    source, licence, out = sys.argv[1:]
    with zipfile.ZipFile(source) as z:
        names = [n for n in z.namelist() if re.fullmatch(r"CVEs_\d{8}\.csv", n)]
        if len(names) != 1:
            print(f"{source}: expected one CVEs_YYYYMMDD.csv, found {names}", file=sys.stderr)
            return 1
        # Records end in CRLF; a field may hold a bare LF (a few titles do), never a CRLF.
        lines = z.read(names[0]).split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept = [lines[0]] + [line for line in lines[1:] if line[:10] < CUTOFF]
    with open(licence, "rb") as f:
        licence_text = f.read()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in ((names[0], b"".join(line + b"\r\n" for line in kept)), ("LICENSE.txt", licence_text)):
            info = zipfile.ZipInfo(name, date_time=(2026, 6, 28, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    with open(out, "wb") as f:
        f.write(buffer.getvalue())
    print(f"{out}: {len(kept) - 1} of {len(lines) - 1} rows of {names[0]}, "
          f"{len(buffer.getvalue())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

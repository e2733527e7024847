"""Reading the files that labelled data comes in: text with line numbers, TSV, CSV and JSON Lines.

Every reader decodes strictly as UTF-8 (a leading byte-order mark is dropped, as Excel and some
Windows tools write one) and reports a problem as `ValueError("path:line: what is wrong")`, so a
bad row in a 400,000-line file is found in seconds. Nothing is skipped or guessed here; the loaders
decide what a row means.
"""
import csv
import io
import json


def fail(source, message):
    """A ValueError that names where the problem is: `source` is "file:line" (or a file alone)."""
    return ValueError(f"{source}: {message}")


def read_text(path):
    """The file's text, decoded as UTF-8 with an optional BOM; an undecodable byte names its line."""
    return decode_utf8(path.read_bytes(), path)


def decode_utf8(data, source):
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(f"{source}:{line}", f"is not valid UTF-8 (byte 0x{data[e.start]:02x}); "
                                       "save the file as UTF-8") from None


def read_lines(path):
    """[(line_number, line)] without line endings; `str.splitlines` would also split on \\x0b, \\x1c
    and other characters that GLUE sentences contain, so only \\n (and a \\r before it) ends a line."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(i + 1, line[:-1] if line.endswith("\r") else line) for i, line in enumerate(lines)]


def read_tsv(path):
    """[(line_number, fields)] of a tab-separated file, blank lines left out.

    GLUE's files are plain tab-split text: quote characters are part of the sentences (csv's
    QUOTE_NONE), so a sentence like `"yes," he said` must not be parsed as a quoted field."""
    return [(number, line.split("\t")) for number, line in read_lines(path) if line.strip()]


def read_csv(path):
    """[(line_number, fields)] of a comma-separated file with standard quoting (a quoted field may
    hold commas and newlines; the line number is where the row starts)."""
    return parse_csv(read_text(path), path)


def parse_csv(text, source):
    """read_csv for text already in memory; `source` names it in errors."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, start = [], 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as e:
        raise fail(f"{source}:{reader.line_num}", f"is not valid CSV ({e})") from None
    return rows


def read_jsonl(path):
    """[(line_number, object)] of a JSON Lines file: one JSON object a line, blank lines left out."""
    records = []
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise fail(f"{path}:{number}", f"is not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:  # arrays or objects nested deeper than Python's parser goes
            raise fail(f"{path}:{number}", "is not a record: its JSON is nested thousands of levels deep") from None
        except ValueError as e:  # an integer of more digits than Python converts (4,300)
            raise fail(f"{path}:{number}", f"is not valid JSON ({e})") from None
        if not isinstance(record, dict):
            raise fail(f"{path}:{number}", f"must hold a JSON object, got {type(record).__name__}")
        records.append((number, record))
    return records


def read_json(path):
    """One JSON document (a RACE file holds one object, written on one line)."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise fail(f"{path}:{e.lineno}", f"is not valid JSON ({e.msg} at column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # an integer too long to convert, or nested too deep
        raise fail(str(path), f"is not valid JSON ({e or 'nested too deep'})") from None

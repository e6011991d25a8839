import os
import time
import uuid

from sightline.ids import new_id, new_uuid


def test_ids_are_unique_version_7_uuids_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert len({text for text, _ in ids}) == 5000
    for text, raw in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.bytes == raw
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after  # the first 48 bits: milliseconds since the epoch
    stamps = [uuid.UUID(text).int >> 80 for text, _ in ids]
    assert stamps == sorted(stamps)
    assert new_uuid().version == 7


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, through the pipe
        os.write(write, "".join(new_id()[0] for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    ours = [new_id()[0] for _ in range(10)]
    assert len(child) == 360 and not any(text[14:] in child for text in ours)

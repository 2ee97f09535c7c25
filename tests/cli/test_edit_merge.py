"""``engagequeue edit --caption`` merges onto the version it read: a concurrent edit is never lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engagequeue import Payload, SQLiteTaskStore, Task, TaskConflict, TaskStatus
from engagequeue.cli._tasks import edit_merged

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class _Interleaved(SQLiteTaskStore):
    """A real store where another moderator changes the post right after each of our reads."""

    def __init__(self, *args: Any, meddle: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meddle = meddle
        self.reads = 0

    async def get(self, task_id: str) -> Task:
        task = await super().get(task_id)
        self.reads += 1
        if self.reads <= self.meddle:
            current = task.payload
            url = f"https://example.com/other-{self.reads}.png"
            await super().edit(task_id, payload=Payload.image(url, current.content))
        return task


async def test_a_caption_edit_keeps_a_media_url_changed_between_read_and_write(
    tmp_path: Path,
) -> None:
    store = _Interleaved(tmp_path / "q.sqlite3", meddle=2)
    async with store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.image("https://example.com/a.png", "old"), T0)
        edited = await edit_merged(store, task.id, None, "new caption", T0 + timedelta(hours=1))
    assert edited.payload.content == "new caption"
    assert edited.payload.media_url == "https://example.com/other-2.png"  # the other edit kept
    assert edited.scheduled_at == T0 + timedelta(hours=1)
    assert store.reads == 3  # two conflicts, each followed by a fresh read and merge


async def test_a_post_that_left_meanwhile_is_a_conflict_not_a_retry(tmp_path: Path) -> None:
    async with SQLiteTaskStore(tmp_path / "q.sqlite3") as store:
        await store.add_session("s")
        task = await store.schedule("s", "g", Payload.image("https://example.com/a.png", "c"), T0)
        await store.claim_due(now=T0, limit=1, worker_id="w")
        with pytest.raises(TaskConflict) as caught:
            await edit_merged(store, task.id, None, "late", None)
        assert caught.value.status is TaskStatus.PROCESSING
        assert (await store.get(task.id)).payload.content == "c"
